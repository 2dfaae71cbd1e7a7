/** Where a config value came from. Line 0 means "no particular line" (e.g. a cross-field check
 *  on options that were not loaded from a file). */
export interface Position {
  file: string;
  line: number;
}

/** Any problem with a configuration. The message is always `file:line: reason`. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "CONFIG";
  readonly file: string;
  readonly line: number;
  /** The message without the `file:line: ` prefix. */
  readonly reason: string;

  constructor(file: string, line: number, reason: string, options?: { cause?: unknown }) {
    super(`${file}:${line}: ${reason}`, options);
    this.file = file;
    this.line = line;
    this.reason = reason;
  }

  static at(pos: Position, reason: string, options?: { cause?: unknown }): ConfigError {
    return new ConfigError(pos.file, pos.line, reason, options);
  }
}
