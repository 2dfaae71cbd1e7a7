// Lexer for the NATS configuration format, written to accept what nats-server 2.9's
// conf/lex.go accepts (including its odd corners, noted where they matter) plus two extensions
// for text nats-server rejects, so a config it accepts keeps its meaning:
//  - map entries may be separated by plain spaces when the next one is `key:` or `key =`
//    (`{user: foo password: bar}`), as configs in the wild (and our issue tracker) do;
//  - in an array an integer may end at a ']' that ends the array (`[1, 2]`); nats-server lexes
//    `2]` as a string and then fails for want of a ']'.
// It rejects some broken input nats-server silently mangles: a map key without a value, and a
// file ending in an opening quote.
//
// The lexer only splits text into tokens; the parser gives them meaning (numbers, sizes,
// variables, includes). Token lines are where the token starts.

import { ConfigError } from "./errors.js";

export type TokenKind =
  | "key"
  | "include"
  | "string"
  | "bool"
  | "integer" // raw text, may carry a size suffix: "64KB"
  | "float"
  | "datetime"
  | "variable" // name without the "$"
  | "arrayStart"
  | "arrayEnd"
  | "mapStart"
  | "mapEnd"
  | "eof";

export interface Token {
  kind: TokenKind;
  text: string;
  line: number;
}

export function lex(input: string, file: string): Token[] {
  return new Lexer(input, file).run();
}

const EOF = "";
const BOOL_WORDS = new Set(["true", "false", "yes", "no", "on", "off"]);

// Go's unicode.IsSpace, which nats-server uses wherever new lines may appear.
const isSpace = (c: string) => c !== EOF && /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/.test(c);
const isBlank = (c: string) => c === " " || c === "\t";
const isNL = (c: string) => c === "\n" || c === "\r";
const isDigit = (c: string) => c >= "0" && c <= "9";
const isKeySep = (c: string) => c === "=" || c === ":";
const isSizeSuffix = (c: string) => c !== EOF && "kKmMgGtTpPeE".includes(c);
/** What may directly follow a number for it to stay a number. */
const endsNumber = (c: string) => c === EOF || isNL(c) || isBlank(c) || c === "}" || c === ";" || c === ",";
const show = (c: string) => (c === EOF ? "end of file" : c === "\n" || c === "\r" ? "a new line" : `'${c}'`);

/** Maps and arrays nest at most this deep. The lexer (and the parser and option builder after it)
 *  recurse once per level, so without a bound a deep enough file overflows the stack and throws a
 *  RangeError instead of a `file:line: message`. Real configs nest a handful of levels. */
export const MAX_NESTING = 128;

class Lexer {
  private pos = 0;
  private line = 1;
  private nesting = 0;
  private readonly tokens: Token[] = [];

  constructor(
    private readonly input: string,
    private readonly file: string,
  ) {}

  run(): Token[] {
    this.top();
    this.emit("eof", "", this.line);
    return this.tokens;
  }

  // ---- helpers ----

  private peek(ahead = 0): string {
    return this.input.charAt(this.pos + ahead);
  }

  private next(): string {
    const c = this.input.charAt(this.pos);
    if (c !== EOF) {
      this.pos++;
      if (c === "\n") this.line++;
    }
    return c;
  }

  private emit(kind: TokenKind, text: string, line: number): void {
    this.tokens.push({ kind, text, line });
  }

  private fail(reason: string, line = this.line): never {
    throw new ConfigError(this.file, line, reason);
  }

  private atComment(): boolean {
    const c = this.peek();
    return c === "#" || (c === "/" && this.peek(1) === "/");
  }

  /** Skips to the end of the line, leaving the new line for the caller. */
  private skipComment(): void {
    while (this.peek() !== EOF && !isNL(this.peek())) this.next();
  }

  private skipWhile(pred: (c: string) => boolean): void {
    while (pred(this.peek())) this.next();
  }

  // ---- structure ----

  /** Skips the characters `skip` accepts, and comments; returns the next character. */
  private skipIgnored(skip: (c: string) => boolean): string {
    for (;;) {
      const c = this.peek();
      if (skip(c)) this.next();
      else if (this.atComment()) this.skipComment();
      else return c;
    }
  }

  private top(): void {
    for (;;) {
      // nats-server ignores '{' at the top level, so a whole file may be wrapped in braces.
      const c = this.skipIgnored((ch) => isSpace(ch) || ch === "{");
      if (c === EOF) return;
      if (c === "/") this.fail("unexpected '/' (comments start with '#' or '//')");
      this.member(false);
      this.afterTopValue();
    }
  }

  private afterTopValue(): void {
    for (;;) {
      const c = this.peek();
      if (this.atComment()) return this.skipComment();
      // A lone '/' is skipped like a blank here by nats-server.
      if (isBlank(c) || c === "/") {
        this.next();
        continue;
      }
      if (c === EOF) return;
      if (isNL(c) || c === ";" || c === "," || c === "}") {
        this.next();
        return;
      }
      this.fail(`expected a new line, ';' or a comment after a top-level value, got ${show(c)}`);
    }
  }

  /** `key value`, `key: value`, `key = value` or `include file`, at a non-space character. */
  private member(inMap: boolean): void {
    const line = this.line;
    const q = this.peek();
    if (isKeySep(q)) this.fail(`unexpected key separator '${q}'`);
    let key: string;
    if (q === '"' || q === "'") {
      key = this.quotedName(q, "key", line);
    } else {
      const start = this.pos;
      this.skipWhile((c) => c !== EOF && !isSpace(c) && !isKeySep(c));
      key = this.input.slice(start, this.pos);
      // `include` is a keyword only when unquoted and followed by white space.
      if (isSpace(this.peek()) && key.toLowerCase() === "include") return this.include();
    }
    this.emit("key", key, line);

    // New lines may come between a key and its separator (or its value when there is none).
    this.skipWhile(isSpace);
    if (this.peek() === EOF) {
      // nats-server 2.9 ignores a key without a value at the end of the file (e.g. a stray "}").
      if (inMap) this.fail(`missing value for key "${key}" (end of file in a map)`, line);
      return;
    }
    if (isKeySep(this.peek())) this.next();
    if (inMap) {
      // Inside a map the value may even start on a later line; at the top level it may not.
      this.skipWhile(isSpace);
      const c = this.peek();
      if (c === "," || c === "}" || c === EOF) this.fail(`missing value for key "${key}"`, line);
    }
    this.value();
  }

  /** A key or include name between `quote`s (no escapes), at its opening quote. */
  private quotedName(quote: string, what: string, line: number): string {
    this.next();
    const start = this.pos;
    while (this.peek() !== quote) {
      if (this.peek() === EOF) this.fail(`unexpected end of file in a quoted ${what}`, line);
      this.next();
    }
    const name = this.input.slice(start, this.pos);
    this.next();
    return name;
  }

  private include(): void {
    const line = this.line;
    this.skipWhile(isBlank);
    const q = this.peek();
    let path: string;
    if (q === '"' || q === "'") {
      path = this.quotedName(q, "include", line);
    } else {
      if ("[{(-\\".includes(q) && q !== EOF) this.fail(`expected an include file name, got '${q}'`);
      if (isDigit(q)) this.fail("expected an include file name, got a number");
      const start = this.pos;
      this.skipWhile((c) => !(c === EOF || isNL(c) || isBlank(c) || c === ";" || c === "}" || c === "'"));
      path = this.input.slice(start, this.pos);
      if (path === "") this.fail("expected an include file name");
      if (this.peek() === "'") this.next(); // nats-server drops a quote that ends a bare name
    }
    this.emit("include", path, line);
  }

  private array(): void {
    for (;;) {
      const c = this.skipIgnored(isSpace);
      if (c === "]") {
        this.next();
        return this.emit("arrayEnd", "]", this.line);
      }
      if (c === "," || c === "/") this.fail(`unexpected '${c}' in an array, expected a value`);
      if (c === EOF) this.fail("unexpected end of file in an array (missing ']')");
      this.value(true);
      if (this.afterArrayValue()) return;
    }
  }

  /** Returns true when the array ended. */
  private afterArrayValue(): boolean {
    const c = this.skipIgnored(isBlank);
    // A lone '/' separates values like ',' in nats-server.
    if (c === "," || c === "/" || isNL(c)) {
      this.next();
      return false;
    }
    if (c === "]") {
      this.next();
      this.emit("arrayEnd", "]", this.line);
      return true;
    }
    this.fail(`expected ',' or ']' after an array value, got ${show(c)}`);
  }

  private map(): void {
    for (;;) {
      const c = this.skipIgnored(isSpace);
      if (c === "}") {
        this.next();
        return this.emit("mapEnd", "}", this.line);
      }
      if (c === "]") this.fail("unexpected ']' in a map");
      if (c === EOF) this.fail("unexpected end of file in a map (missing '}')");
      this.member(true);
      if (this.afterMapValue()) return;
    }
  }

  /** Returns true when the map ended. */
  private afterMapValue(): boolean {
    const start = this.pos;
    const c = this.skipIgnored(isBlank);
    // A lone '/' separates entries like ',' in nats-server.
    if (c === "," || c === ";" || c === "/" || isNL(c)) {
      this.next();
      return false;
    }
    if (c === "}") {
      this.next();
      this.emit("mapEnd", "}", this.line);
      return true;
    }
    // The meshbroker extension: after white space, `key:` may follow on the same line (a
    // comment runs to the end of the line, so only blanks can have been skipped here).
    if (this.pos > start && this.separatedKeyAhead()) return false;
    this.fail(`expected ',' or '}' after a map value, got ${show(c)}`);
  }

  /** Is the text ahead a key (bare or quoted, on this line) followed by ':' or '='? */
  private separatedKeyAhead(): boolean {
    const eol = this.input.indexOf("\n", this.pos);
    const rest = this.input.slice(this.pos, eol < 0 ? undefined : eol);
    return /^(?:"[^"]*"|'[^']*'|[^\s:="'][^\s:=]*)[ \t]*[:=]/.test(rest);
  }

  // ---- values ----

  private value(inArray = false): void {
    this.skipWhile(isBlank);
    const line = this.line;
    const c = this.peek();
    if (c === "[" || c === "{") {
      if (this.nesting === MAX_NESTING) this.fail(`maps and arrays nest deeper than ${MAX_NESTING} levels`);
      this.next();
      this.nesting++;
      if (c === "[") {
        this.emit("arrayStart", "[", line);
        this.array();
      } else {
        this.emit("mapStart", "{", line);
        this.map();
      }
      this.nesting--;
      return;
    }
    if (c === '"') return this.doubleQuoted(line);
    if (c === "'") return this.singleQuoted(line);
    if (c === "(") return this.block(line);
    if (c === "-") return this.negativeNumber(line);
    if (isDigit(c)) return this.number(line, inArray);
    if (c === ".") this.fail("floats must start with a digit");
    if (isNL(c)) this.fail("expected a value but found a new line");
    this.bare(this.pos, line);
  }

  /** An unquoted value from `start` (this.pos may be past it): up to a blank, a new line,
   *  ';', ',', ']', '}' or the end. Escapes work as in double quotes. */
  private bare(start: number, line: number): void {
    const parts: Part[] = [];
    let seg = start;
    for (;;) {
      const c = this.peek();
      if (c === "\\") {
        parts.push(this.input.slice(seg, this.pos));
        this.next();
        this.escape(parts);
        seg = this.pos;
        continue;
      }
      if (c === EOF || isNL(c) || isBlank(c) || c === ";" || c === "," || c === "]" || c === "}") break;
      this.next();
      if (c === "'") {
        // nats-server ends a bare value at a quote and drops the quote.
        parts.push(this.input.slice(seg, this.pos - 1));
        return this.emit("string", joinParts(parts), line);
      }
    }
    const text = this.input.slice(seg, this.pos);
    if (parts.length > 0) {
      parts.push(text);
      this.emit("string", joinParts(parts), line);
    } else if (BOOL_WORDS.has(text.toLowerCase())) {
      this.emit("bool", text, line);
    } else if (text.startsWith("$")) {
      this.emit("variable", text.slice(1), line);
    } else {
      this.emit("string", text, line);
    }
  }

  private doubleQuoted(line: number): void {
    this.next();
    const parts: Part[] = [];
    let seg = this.pos;
    for (;;) {
      const c = this.peek();
      if (c === EOF) this.fail("unexpected end of file in a quoted string", line);
      if (c === "\\") {
        parts.push(this.input.slice(seg, this.pos));
        this.next();
        this.escape(parts);
        seg = this.pos;
        continue;
      }
      if (c === '"') {
        parts.push(this.input.slice(seg, this.pos));
        this.next();
        return this.emit("string", joinParts(parts), line);
      }
      this.next();
    }
  }

  /** Single quotes: no escapes at all. */
  private singleQuoted(line: number): void {
    this.next();
    const start = this.pos;
    while (this.peek() !== "'") {
      if (this.peek() === EOF) this.fail("unexpected end of file in a quoted string", line);
      this.next();
    }
    const text = this.input.slice(start, this.pos);
    this.next();
    this.emit("string", text, line);
  }

  /** After a backslash. */
  private escape(parts: Part[]): void {
    const c = this.next();
    switch (c) {
      case "t":
        return void parts.push("\t");
      case "n":
        return void parts.push("\n");
      case "r":
        return void parts.push("\r");
      case '"':
        return void parts.push('"');
      case "\\":
        return void parts.push("\\");
      case "x": {
        const hex = this.next() + this.next();
        if (/[\r\n]/.test(hex)) this.fail("expected two hexadecimal digits after '\\x', but hit the end of the line");
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) this.fail(`expected two hexadecimal digits after '\\x', got '${hex}'`);
        return void parts.push(parseInt(hex, 16));
      }
    }
    this.fail(`invalid escape character ${show(c)}; only \\xXX, \\t, \\n, \\r, \\" and \\\\ are allowed`);
  }

  /** `( ... )`: raw text up to a line holding only ')'. */
  private block(line: number): void {
    this.next();
    let from = this.pos;
    for (;;) {
      const nl = this.input.indexOf("\n)", from);
      if (nl < 0) this.fail("unexpected end of file in a '(' block (it ends with ')' alone on a line)", line);
      const after = this.input.charAt(nl + 2);
      if (after === "\n" || after === EOF) {
        const text = this.input.slice(this.pos, nl + 1);
        while (this.pos < nl + 2) this.next();
        return this.emit("string", text, line);
      }
      from = nl + 1;
    }
  }

  /** At a digit: an integer, a size (1MB), a float, an IP address, a datetime, or a bare string
   *  that starts with digits (2s, 500ms, 4222abc). */
  private number(line: number, inArray: boolean): void {
    const start = this.pos;
    this.skipWhile(isDigit);
    const c = this.peek();
    if (c === "-") {
      this.next();
      if (this.pos - start !== 5) this.fail("dates must be in full ISO8601 Zulu form, e.g. 2006-01-02T15:04:05Z");
      return this.datetime(start, line);
    }
    if (c === ".") {
      this.next();
      return this.fraction(start, line);
    }
    if (isSizeSuffix(c)) {
      this.next();
      return this.sizeSuffix(start, line);
    }
    if (endsNumber(c) || (inArray && c === "]" && (endsNumber(this.peek(1)) || this.peek(1) === "]"))) {
      return this.emit("integer", this.input.slice(start, this.pos), line);
    }
    // Anything else turns it into a bare string, that character included (as in nats-server).
    this.next();
    this.bare(start, line);
  }

  private negativeNumber(line: number): void {
    const start = this.pos;
    this.next();
    const c = this.peek();
    if (c === ".") this.fail("floats must start with a digit");
    if (!isDigit(c)) this.fail(`expected a digit after '-', got ${show(c)}`);
    this.skipWhile(isDigit);
    const d = this.peek();
    if (d === ".") {
      this.next();
      return this.fraction(start, line);
    }
    if (isSizeSuffix(d)) {
      this.next();
      return this.sizeSuffix(start, line);
    }
    this.emit("integer", this.input.slice(start, this.pos), line);
  }

  /** After `digits.`: a float, or an IP address (`127.0.0.1:4222`) at a second dot. */
  private fraction(start: number, line: number): void {
    const c = this.next();
    if (!isDigit(c)) this.fail(`floats need a digit after '.', got ${show(c)}`);
    this.skipWhile(isDigit);
    if (this.peek() === ".") {
      this.skipWhile((d) => isDigit(d) || d === "." || d === ":" || d === "-");
      return this.emit("string", this.input.slice(start, this.pos), line);
    }
    this.emit("float", this.input.slice(start, this.pos), line);
  }

  /** After `digits` + k/m/g/t/p/e: any run of b/i letters (1k, 1KB, 1Mi, 1GiB). Something else
   *  after it makes a bare string: `500ms`, `1kx`. A digit ends it (nats-server: `1m30s` is
   *  1000000 followed by garbage). */
  private sizeSuffix(start: number, line: number): void {
    this.skipWhile((c) => c !== EOF && "bBiI".includes(c));
    const c = this.peek();
    // Not ']': nats-server reads `[1K]` as the string "1K", so we must too.
    if (endsNumber(c) || isDigit(c)) return this.emit("integer", this.input.slice(start, this.pos), line);
    this.bare(start, line);
  }

  /** After `YYYY-`. */
  private datetime(start: number, line: number): void {
    for (const f of "00-00T00:00:00Z") {
      const c = this.next();
      if (f === "0" ? !isDigit(c) : c !== f) {
        this.fail(`expected ${f === "0" ? "a digit" : `'${f}'`} in ISO8601 datetime, got ${show(c)}`);
      }
    }
    this.emit("datetime", this.input.slice(start, this.pos), line);
  }
}

/** Pieces of a string with escapes; numbers are raw bytes from \xXX. */
type Part = string | number;

function joinParts(parts: Part[]): string {
  if (parts.every((p) => typeof p === "string")) return parts.join("");
  // \xXX gives bytes, which may form UTF-8 sequences together (as in Go strings).
  return Buffer.concat(parts.map((p) => (typeof p === "number" ? Buffer.from([p]) : Buffer.from(p, "utf8")))).toString("utf8");
}
