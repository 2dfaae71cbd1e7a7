// Accounts: each has its own subject space (sublist). Exports and imports join them:
// a stream import copies matching messages of the exporter into the importer (optionally
// under a prefix or another subject); a service import sends the importer's requests to the
// exporter, with a reply subject the router maps back to the requester.
import type { ExportConfig, ImportConfig } from "../common/config/options.js";
import type { RouterAccount } from "./link.js";
import { subjectIsSubsetOf } from "../common/subject.js";
import { Sublist } from "./sublist.js";

/** A stream the account receives from an exporter: exporter subject → importer subject. */
export interface StreamImport {
  readonly importer: Account;
  readonly filter: string;
  /** When an activation token ends it (ms epoch); undefined = never. */
  readonly expiresAt: number | undefined;
  map(subject: string): string;
}

/** A service an account reaches in an exporter: local subject → exporter subject. */
export interface ServiceImport {
  readonly exporter: Account;
  readonly local: string;
  /** When an activation token ends it (ms epoch); undefined = never. */
  readonly expiresAt: number | undefined;
  readonly responseType: "Singleton" | "Stream" | "Chunked";
  map(subject: string): string;
}

/** Where a reply to a service import goes, and until when. */
export interface ResponseRoute {
  readonly account: Account;
  readonly reply: string;
  readonly singleton: boolean;
  readonly expires: number;
}

export class Account {
  readonly sublist = new Sublist();
  /** Other accounts' imports of this account's streams. */
  streamImports: StreamImport[] = [];
  /** This account's imports of other accounts' services. */
  serviceImports: ServiceImport[] = [];
  /** Reply subjects this account's responders publish to, keyed by the mapped reply. */
  readonly responses = new Map<string, ResponseRoute>();
  /** With a mesh: this router told its peers it takes replies on its `_R_.` prefix here. */
  meshReplies = false;

  constructor(readonly name: string) {}
}

export type Warn = (message: string) => void;

/**
 * Wires exports/imports between accounts (replacing any earlier wiring, for reloads).
 * An import the exporter does not allow is skipped with a warning, as nats-server logs it.
 */
export function wireAccounts(configs: RouterAccount[], account: (name: string) => Account, warn: Warn): void {
  const byName = new Map(configs.map((c) => [c.name, c]));
  for (const c of configs) {
    account(c.name).streamImports = [];
    account(c.name).serviceImports = [];
  }
  for (const c of configs) {
    const importer = account(c.name);
    for (const imp of c.imports) {
      const exporterConfig = byName.get(imp.account);
      const exp = exporterConfig?.exports.find((e) => e.kind === imp.kind && exportCovers(e, imp.subject, c.name));
      if (!exp) {
        warn(`account "${c.name}": ${imp.kind} import of "${imp.subject}" from "${imp.account}" is not exported to it, ignored`);
        continue;
      }
      if (exp.tokenRequired && !activationCovers(imp)) {
        warn(`account "${c.name}": ${imp.kind} import of "${imp.subject}" from "${imp.account}" has no valid activation token for it` +
          (imp.activation ? ` (activation token import subject "${imp.activation.subject}" doesn't match import)` : "") + ", ignored");
        continue;
      }
      const expiresAt = imp.activation?.expiresAt;
      const exporter = account(imp.account);
      if (imp.kind === "stream") {
        const target = imp.to ?? (imp.prefix ? undefined : imp.subject);
        const map = imp.prefix
          ? (s: string) => (imp.prefix!.endsWith(".") ? imp.prefix + s : `${imp.prefix}.${s}`)
          : (s: string) => transform(imp.subject, target!, s);
        exporter.streamImports.push({ importer, filter: imp.subject, expiresAt, map });
      } else {
        const local = imp.to ?? imp.subject;
        importer.serviceImports.push({
          exporter, local, expiresAt,
          responseType: exp.responseType ?? "Singleton",
          map: (s) => transform(local, imp.subject, s),
        });
      }
    }
  }
}

/** Is all of `subject` within the export (a "pub.>" import is not within a "pub.*" export), and
 *  may `importer` take it? The same rule the config loader applies (validate.ts). */
function exportCovers(e: ExportConfig, subject: string, importer: string): boolean {
  if (e.accounts && !e.accounts.includes(importer)) return false;
  return subjectIsSubsetOf(subject, e.subject);
}

/** Operator mode: an activation token (checked by jwt.ts) whose subject contains the import's;
 *  a token without a subject covers what the export covers. */
function activationCovers(imp: ImportConfig): boolean {
  const a = imp.activation;
  return a !== undefined && (a.subject === "" || subjectIsSubsetOf(imp.subject, a.subject));
}

/**
 * Maps a subject matching `from` onto `to`: literal `to` is taken as is; wildcards in `to`
 * take the tokens the wildcards of `from` matched, in order.
 */
export function transform(from: string, to: string, subject: string): string {
  if (from === to) return subject;
  const toTokens = to.split(".");
  if (!toTokens.includes("*") && !toTokens.includes(">")) return to;
  const fromTokens = from.split("."), s = subject.split(".");
  const captured: string[] = [];
  let rest = "";
  for (let i = 0; i < fromTokens.length; i++) {
    if (fromTokens[i] === "*") captured.push(s[i]);
    else if (fromTokens[i] === ">") rest = s.slice(i).join(".");
  }
  let k = 0;
  return toTokens.map((t) => (t === "*" ? captured[k++] ?? "*" : t === ">" ? rest : t)).join(".");
}
