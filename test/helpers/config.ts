// Shared by the config loader's tests.
import { expect } from "vitest";
import { ConfigError } from "../../services/common/config/index.js";

/** The ConfigError `fn` throws; fails the test when it throws something else or nothing. */
export function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}
