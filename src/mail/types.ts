// The mail port: what the rest of Parley needs from "send an email", whichever adapter delivers it.

/** One plain-text message. `text` may carry a secret (a sign-in link): adapters never log it. */
export interface Mail {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  /** Resolves once the message is handed over (written to the outbox, accepted by the SMTP server). */
  send(mail: Mail): Promise<void>;
  /** Waits for sends in flight, then releases files or connections. */
  close(): Promise<void>;
}
