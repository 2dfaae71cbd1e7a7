// Account sets as wire data (AccountSet in common.proto) and back.
import type { ExportConfig, ImportConfig } from "../../common/config/options.js";
import type { AccountSet, RouterAccount } from "../link.js";
import {
  ExportKind, ResponseType, type AccountSet as WireAccountSet, type Draft, type Export, type Import,
} from "./frames.js";

const KIND = { stream: ExportKind.Stream, service: ExportKind.Service } as const;
const RESPONSE = { Singleton: ResponseType.Singleton, Stream: ResponseType.Stream, Chunked: ResponseType.Chunked } as const;
const RESPONSE_NAME = ["Singleton", "Stream", "Chunked"] as const;

export function toWire(set: AccountSet): Draft<WireAccountSet> {
  return {
    version: set.version,
    systemAccount: set.systemAccount,
    accounts: set.accounts.map((a) => ({
      name: a.name,
      exports: a.exports.map((e): Draft<Export> => ({
        kind: KIND[e.kind], subject: e.subject, accounts: e.accounts ?? [],
        responseType: RESPONSE[e.responseType ?? "Singleton"], tokenRequired: e.tokenRequired ?? false,
      })),
      imports: a.imports.map((i): Draft<Import> => ({
        kind: KIND[i.kind], account: i.account, subject: i.subject, to: i.to ?? "", prefix: i.prefix ?? "",
        activation: i.activation && { subject: i.activation.subject, expiresAtMs: i.activation.expiresAt ?? 0 },
      })),
    })),
  };
}

export function fromWire(set: WireAccountSet): AccountSet {
  const kind = (k: ExportKind) => (k === ExportKind.Service ? "service" : "stream");
  const accounts = set.accounts.map((a): RouterAccount => ({
    name: a.name,
    exports: a.exports.map((e): ExportConfig => ({
      kind: kind(e.kind), subject: e.subject,
      // An empty list is public, as in the .proto.
      accounts: e.accounts.length === 0 ? undefined : e.accounts,
      responseType: e.kind === ExportKind.Service ? RESPONSE_NAME[e.responseType] : undefined,
      tokenRequired: e.tokenRequired || undefined,
    })),
    imports: a.imports.map((i): ImportConfig => ({
      kind: kind(i.kind), account: i.account, subject: i.subject,
      to: i.to === "" ? undefined : i.to, prefix: i.prefix === "" ? undefined : i.prefix,
      // Absent decodes as null: no activation is undefined, as the router checks.
      activation: i.activation ? {
        subject: i.activation.subject, expiresAt: i.activation.expiresAtMs === 0 ? undefined : i.activation.expiresAtMs,
      } : undefined,
    })),
  }));
  return { version: set.version, accounts, systemAccount: set.systemAccount };
}
