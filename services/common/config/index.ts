// Public surface of the config loader: text → tree (parser) → Options (build) → checks
// (validate) → a deep-frozen Options. The environment is passed in; nothing later reads it.

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { applyDefaults, buildOptions } from "./build.js";
import { ConfigError } from "./errors.js";
import type { Options } from "./options.js";
import { parseConfigText } from "./parser.js";
import { validateOptions } from "./validate.js";

export { ConfigError, type Position } from "./errors.js";
export { parseConfigText, positionOf, isUsedVariable, type ConfigMap, type ConfigValue } from "./parser.js";
export { buildOptions, applyDefaults, type BuildResult } from "./build.js";
export { validateOptions, CONNECTION_TYPES } from "./validate.js";
export { parseGoDuration, formatGoDuration } from "./duration.js";
export * from "./options.js";

export interface LoadedConfig {
  /** Deep-frozen. */
  options: Readonly<Options>;
  /** `file:line: message` lines for things accepted but ignored or deprecated. */
  warnings: string[];
}

/** Loads a config file; includes are relative to its directory. Throws ConfigError. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(path, 0, `error opening config file: ${(err as Error).message}`, { cause: err });
  }
  return load(text, path, env, resolve(path));
}

/** Loads config text; `file` names it in messages and anchors relative includes. */
export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  return load(text, file, env, undefined);
}

/** Options with every default applied, for running without a config file and for tests. */
export function defaultOptions(overrides: Partial<Options> = {}): Readonly<Options> {
  return deepFreeze(applyDefaults(overrides));
}

function load(text: string, file: string, env: NodeJS.ProcessEnv, configFile: string | undefined): LoadedConfig {
  const tree = parseConfigText(text, file, env);
  const { options, warnings } = buildOptions(tree, file, env);
  if (configFile !== undefined) options.configFile = configFile;
  validateOptions(options);
  return { options: deepFreeze(options), warnings };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
