// The number the SQLite store files a message's (sender_id, client_msg_id) under, for idempotent appends.
// It is stored in every message row (messages.client_key): never change this function, or messages
// stored before the change stop being found and a retry of one is stored twice.

/**
 * The sender and the client's id, hashed to 53 bits. Different pairs may share a key: the store compares
 * the sender and the client id of every row it finds under one.
 */
export const clientKey = (senderId: string, clientMsgId: string) => cyrb53(`${senderId}\u0000${clientMsgId}`);

/** cyrb53 (by bryc, public domain): a 53-bit hash of a string's UTF-16 code units, seed 0. */
export function cyrb53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
