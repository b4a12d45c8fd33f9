// The sockets of this node: who is connected, per user and per session, plus each socket's state.
// Lookups only; fanout never loops over this (Bun topics do it in native code).

import type { ServerWebSocket } from "bun";
import type { Counter } from "../lib/metrics.ts";
import { addressKey } from "../plugins/context.ts";
import type { Encoding } from "./protocol.ts";

export interface SocketState {
  kind: "user" | "public";
  user_id: string;
  session_id: string;
  encoding: Encoding;
  /** Token bucket for this connection's frames. */
  tokens: number;
  refilledAt: number;
  /** Frames refused in a row; too many closes the socket. */
  denied: number;
  lastSeen: number;
  /** When the socket's session ends (clock ms): the socket closes then. 0 for public sockets. */
  expiresAt: number;
  /**
   * Holds one of the user's places (WS_MAX_CONNECTIONS_PER_USER) in their socket count across nodes
   * (presence): from its upgrade to its close.
   */
  counted: boolean;
  /**
   * Moves on every change the fanout makes to the socket's conversation topics (a join, a leave, a
   * deletion): a reconcile that read the store before one does not undo it.
   */
  moves: number;
  /** The user's first counted socket, still to write them online (at hello, or at its close if first). */
  announce: boolean;
  /** The channel of a socket opened at /ws/public/{channel}; "" for user sockets. */
  channel: string;
  /** The client address of a public socket (WS_MAX_PUBLIC_PER_IP); "" for user sockets. */
  ip: string;
  /** Public channels this socket is in (WS_MAX_CHANNELS at most; a public one's path channel too); made at the first subscribe. */
  channels?: Set<string>;
  /** Error frames sent, by code (metrics); one counter shared by every socket, like the callbacks below. */
  errors: Counter;
  open(ws: Socket): void;
  message(ws: Socket, data: string | Buffer): void;
  close(ws: Socket, code: number, reason: string): void;
  /** The socket took some of its queue, after it had one (Bun's drain handler). */
  drain(ws: Socket): void;
}

export type Socket = ServerWebSocket<SocketState>;

export class Connections {
  readonly all = new Set<Socket>();
  private byUser = new Map<string, Set<Socket>>();
  private bySession = new Map<string, Set<Socket>>();
  private perEncoding: Record<Encoding, number> = { msgpack: 0, msgpackr: 0, json: 0 };
  private publicByIp = new Map<string, number>();

  add(ws: Socket) {
    if (this.all.has(ws)) return;
    this.perEncoding[ws.data.encoding]++;
    this.all.add(ws);
    if (ws.data.kind === "public") {
      const key = addressKey(ws.data.ip);
      this.publicByIp.set(key, (this.publicByIp.get(key) ?? 0) + 1);
      return;
    }
    addTo(this.byUser, ws.data.user_id, ws);
    addTo(this.bySession, ws.data.session_id, ws);
  }

  /** Once: a socket removed already is left alone. */
  remove(ws: Socket) {
    if (!this.all.delete(ws)) return;
    this.perEncoding[ws.data.encoding]--;
    if (ws.data.kind === "public") {
      const key = addressKey(ws.data.ip);
      const left = (this.publicByIp.get(key) ?? 1) - 1;
      if (left > 0) this.publicByIp.set(key, left);
      else this.publicByIp.delete(key);
      return;
    }
    removeFrom(this.byUser, ws.data.user_id, ws);
    removeFrom(this.bySession, ws.data.session_id, ws);
  }

  /** Public-channel sockets open from one client address (an IPv6 one: from its /64, see addressKey). */
  publicFrom(ip: string): number {
    return this.publicByIp.get(addressKey(ip)) ?? 0;
  }

  /** How many sockets of this node speak the encoding (public ones included). */
  speaking(encoding: Encoding): number {
    return this.perEncoding[encoding];
  }

  ofUser(userId: string): ReadonlySet<Socket> {
    return this.byUser.get(userId) ?? EMPTY;
  }

  ofSession(sessionId: string): ReadonlySet<Socket> {
    return this.bySession.get(sessionId) ?? EMPTY;
  }
}

const EMPTY: ReadonlySet<Socket> = new Set();

function addTo(map: Map<string, Set<Socket>>, key: string, ws: Socket) {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(ws);
}

function removeFrom(map: Map<string, Set<Socket>>, key: string, ws: Socket) {
  const set = map.get(key);
  if (!set) return;
  set.delete(ws);
  if (set.size === 0) map.delete(key);
}
