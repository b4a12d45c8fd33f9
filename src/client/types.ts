// The shapes the server answers with, shared by the REST client and the realtime connection. Type-only
// imports of the server's models: erased at runtime, so the SDK still loads in a browser.

import type { SessionView, TokenResponse } from "../modules/auth/model.ts";
import type {
  ConversationView,
  CreateConversation,
  ParticipantView,
} from "../modules/conversations/model.ts";
import type { MessageView, Receipts, SendMessage } from "../modules/messages/model.ts";
import type { OwnUserView, UpdateUser, UserView } from "../modules/users/model.ts";

export type {
  ConversationView,
  CreateConversation,
  MessageView,
  OwnUserView,
  ParticipantView,
  Receipts,
  SendMessage,
  SessionView,
  TokenResponse,
  UpdateUser,
  UserView,
};

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}
export interface MessagePage {
  items: MessageView[];
  has_more: boolean;
}
export interface EventPage {
  items: MessageView[];
  last_seq: number;
  has_more: boolean;
}
export interface Receipt {
  user_id: string;
  delivered_at: string | null;
  read_at: string | null;
}

export interface SignUpInput {
  email: string;
  username: string;
  password: string;
  display_name?: string;
  device_name?: string;
}
export type SignInInput = ({ email: string } | { username: string }) & {
  password: string;
  device_name?: string;
};
