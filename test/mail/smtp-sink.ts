// A real SMTP server (smtp-server) on 127.0.0.1, port 0, that keeps what it receives, for the SMTP tests.

import type { AddressInfo } from "node:net";
import { SMTPServer, type SMTPServerAddress } from "smtp-server";
import type { Mail } from "../../src/mail/types.ts";
import { within } from "./contract.ts";

export interface Received {
  mailFrom: string;
  rcptTo: string[];
  /** The DATA as the server got it, RFC 822 text with CRLF line ends. */
  raw: string;
}

export interface SmtpSink {
  url: string;
  received: Received[];
  /** Resolves with the messages once at least `count` have arrived; rejects after a timeout. */
  waitFor(count: number): Promise<Received[]>;
  close(): Promise<void>;
}

export interface SinkOptions {
  /** Return an error message to refuse a recipient with a 550 reply. */
  refuseRecipient?: (address: string) => string | undefined;
}

export async function startSmtpSink(options: SinkOptions = {}): Promise<SmtpSink> {
  const received: Received[] = [];
  const waiters = new Set<() => void>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onRcptTo(address: SMTPServerAddress, _session, callback) {
      const refusal = options.refuseRecipient?.(address.address);
      if (!refusal) return callback();
      const err: Error & { responseCode?: number } = new Error(refusal);
      err.responseCode = 550;
      callback(err);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", callback);
      stream.on("end", () => {
        const from = session.envelope.mailFrom;
        received.push({
          mailFrom: from ? from.address : "",
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString("utf8"),
        });
        for (const wake of waiters) wake();
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;

  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    waitFor(count) {
      if (received.length >= count) return Promise.resolve(received);
      let wake = () => {};
      const arrived = new Promise<Received[]>((resolve) => {
        wake = () => {
          if (received.length >= count) resolve(received);
        };
        waiters.add(wake);
      });
      return within(arrived, `${count} message(s) at the SMTP sink`).finally(() => waiters.delete(wake));
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Reads back recipient, subject and text from a plain-text message as nodemailer composes it. */
export function parseMessage(raw: string): Mail {
  const split = raw.indexOf("\r\n\r\n");
  if (split === -1) throw new Error("message has no header/body separator");
  // Unfold continued header lines, then index headers by lower-case name.
  const headerText = raw.slice(0, split).replace(/\r\n[ \t]+/g, " ");
  const headers = new Map<string, string>();
  for (const line of headerText.split("\r\n")) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const body = raw.slice(split + 4);
  const encoding = (headers.get("content-transfer-encoding") ?? "7bit").toLowerCase();
  const bytes =
    encoding === "quoted-printable"
      ? decodeQuotedPrintable(body)
      : encoding === "base64"
        ? Buffer.from(body, "base64")
        : Buffer.from(body, "utf8");
  return {
    to: headers.get("to") ?? "",
    subject: headers.get("subject") ?? "",
    text: bytes.toString("utf8").replace(/\r\n/g, "\n").replace(/\n$/, ""),
  };
}

/** RFC 2045 quoted-printable: "=" at a line end is a soft break, "=XY" is one byte. */
export function decodeQuotedPrintable(body: string): Buffer {
  const joined = body.replace(/=\r\n/g, "");
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const hex = joined.slice(i + 1, i + 3);
    if (joined[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(joined[i] ?? "", "utf8"));
    }
  }
  return Buffer.from(bytes);
}
