// The SDK's resumes in hand: a user in many conversations resumes them in chunks of 500, at most 8 of them
// (or the server's burst, if smaller) awaiting their answers at once, the next sent as one is answered.
// The server refuses a resume past WS_RATE_BURST in hand, which would end the socket at every reconnect.

import { expect, it } from "bun:test";
import type { Link } from "../../src/client/link.ts";
import { Receipts } from "../../src/client/receipts.ts";
import { Resumes } from "../../src/client/resume.ts";
import type { Sender } from "../../src/client/sender.ts";

type ResumeFrame = { type: "resume"; ref: number; positions: Record<string, number> };

function connection(burst: number) {
  const sent: ResumeFrame[] = [];
  let ref = 0;
  const sender = {
    ref: () => ++ref,
    transmit: (frame: ResumeFrame) => {
      sent.push(frame);
      return "queued";
    },
    burst,
  } as unknown as Sender;
  const link = { socket: { readyState: 1 }, connected: true } as unknown as Link;
  const resumes = new Resumes("u-me", undefined, link, sender, new Receipts(() => {}), () => {});
  /** Every conversation of a resume frame answered `resumed`. */
  const answer = (frame: ResumeFrame) => {
    for (const [id, seq] of Object.entries(frame.positions))
      resumes.resumed({ type: "resumed", conversation_id: id, seq, ref: frame.ref });
  };
  return { sent, resumes, answer };
}

it("keeps at most 8 resumes awaiting their answers, and sends the next as each is answered", () => {
  const { sent, resumes, answer } = connection(30);
  for (let i = 0; i < 5_000; i++) resumes.catchup.join(`c-${i}`, i);
  resumes.hello();
  expect(sent.map((f) => Object.keys(f.positions).length)).toEqual(Array(8).fill(500));
  answer(sent[0] as ResumeFrame);
  expect(sent.length).toBe(9);
  // Answered in any order: one more goes out for each.
  answer(sent[5] as ResumeFrame);
  expect(sent.length).toBe(10);
  for (const frame of [...sent]) if (frame !== sent[0] && frame !== sent[5]) answer(frame);
  // Every conversation asked for once, from its position.
  const asked = sent.flatMap((f) => Object.entries(f.positions));
  expect(asked.length).toBe(5_000);
  expect(new Map(asked)).toEqual(new Map(Array.from({ length: 5_000 }, (_, i) => [`c-${i}`, i])));
});

it("keeps fewer in hand when the server's burst is smaller", () => {
  const { sent, resumes, answer } = connection(2);
  for (let i = 0; i < 2_000; i++) resumes.catchup.join(`c-${i}`, 0);
  resumes.hello();
  expect(sent.length).toBe(2);
  answer(sent[1] as ResumeFrame);
  expect(sent.length).toBe(3);
});

it("drops what waits when the socket goes: the next hello resumes everything again", () => {
  const { sent, resumes } = connection(30);
  for (let i = 0; i < 5_000; i++) resumes.catchup.join(`c-${i}`, 0);
  resumes.hello();
  resumes.left();
  sent.length = 0;
  resumes.hello();
  expect(sent.length).toBe(8);
  expect(Object.keys(sent[0]?.positions ?? {})[0]).toBe("c-0");
});
