// Types of rest-contract.mjs, for the Bun peer and the bench's TypeScript.

export interface RestSettings {
  usernames: string[];
  password: string;
  memoryKiB: number;
  time: number;
  /** The Express peer's JWT secret. */
  secret: string;
}

export interface StoredMessage {
  id: string;
  conversation_id: string;
  sender_id: string;
  seq: number;
  version_seq: number;
  client_msg_id: string | null;
  content: string;
  message_type: "text";
  status: "sent";
  reply_to: null;
  attachments: never[];
  reactions: never[];
  envelope: null;
  edited_at: null;
  deleted: false;
  created_at: string;
  updated_at: string;
}

export function restSettings(env: Record<string, string | undefined>): RestSettings;
export function toMessage(
  conversationId: string,
  senderId: string,
  seq: number,
  body: { content?: unknown; client_msg_id?: unknown } | null | undefined,
): StoredMessage;
export function pageOf(
  log: StoredMessage[],
  before: string | number | null | undefined,
  limit: string | number | null | undefined,
): { items: StoredMessage[]; has_more: boolean };
