// POST /api/announcements: users with the admin role broadcast to a public channel's subscribers, on
// every node or (the other nodes out of reach) on none.

import { Elysia, t } from "elysia";
import type { Deps } from "../../deps.ts";
import { AppError } from "../../lib/errors.ts";
import { Text } from "../../lib/text.ts";
import { ErrorResponse } from "../../plugins/openapi.ts";
import { topics } from "../../realtime/fanout.ts";
import { ChannelName } from "../../realtime/protocol.ts";
import { authGuard } from "../auth/guard.ts";

const Announcement = t.Object({
  channel: ChannelName,
  text: Text({ minLength: 1, maxLength: 4000 }),
});
const AnnouncementView = t.Object({ channel: t.String(), text: t.String(), sent_at: t.String() });

export function announcementsController(deps: Deps) {
  return new Elysia({ prefix: "/api/announcements", tags: ["announcements"] }).use(authGuard(deps)).post(
    "",
    async ({ body, userId, set }) => {
      const user = await deps.store.users.byId(userId);
      if (user?.role !== "admin") throw new AppError("forbidden", "only admins send announcements");
      const frame = {
        type: "announcement" as const,
        channel: body.channel,
        text: body.text,
        sent_at: new Date(deps.clock.now()).toISOString(),
      };
      // Nothing keeps an announcement: one the other nodes cannot get is sent to nobody and refused, to be
      // sent again, rather than answered 201 and lost for their subscribers.
      if (!deps.gateway.fanout.publishEverywhere(topics.channel(body.channel), frame))
        throw new AppError("unavailable", "the other nodes cannot be reached; try again", {
          headers: { "Retry-After": "5" },
        });
      deps.logger.info({ user_id: userId, channel: body.channel }, "announcement sent");
      set.status = 201;
      return { channel: frame.channel, text: frame.text, sent_at: frame.sent_at };
    },
    { auth: true, body: Announcement, parse: "json", response: { 201: AnnouncementView, ...ErrorResponse } },
  );
}
