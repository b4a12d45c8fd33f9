// Text people type (names, topics, device names, ids a client makes up): well-formed Unicode without NUL.
// A lone surrogate cannot be stored as UTF-8: SQLite and MongoDB would keep U+FFFD in its place, so the
// value read back would not be the one accepted. Message content and reactions check the same in the
// messages service, with their own byte limits.

import { FormatRegistry, type StringOptions, Type } from "@sinclair/typebox";
import { AppError } from "./errors.ts";

export const isText = (value: string): boolean => value.isWellFormed() && !value.includes("\u0000");

FormatRegistry.Set("text", isText);

/** A string schema that also refuses lone surrogates and NUL (422, "Expected string to match 'text' format"). */
export const Text = (options: StringOptions = {}) => Type.String({ ...options, format: "text" });

/**
 * The form a name is searched by: lowercase and in Unicode's composed form (NFC), so that a name typed with
 * decomposed accents ("e" and a combining acute, as macOS keyboards may send it) and a query typed
 * composed ("é") meet. Lowercasing can decompose ("İ"), so NFC comes last too.
 */
export const nameKey = (name: string): string => name.normalize("NFC").toLowerCase().normalize("NFC");

/**
 * A name that shows nothing: whitespace, control and format characters (zero-width space and joiners,
 * direction marks) and the blank-looking letters (Hangul fillers, the braille blank) alone.
 */
export const isBlankName = (name: string): boolean =>
  /^[\s\p{Cc}\p{Cf}\u115f\u1160\u3164\uffa0\u2800]*$/u.test(name);

/**
 * A name shown to others (a display name, a conversation's name), trimmed; one that shows nothing would be
 * no name at all: 422 naming the field.
 */
export function visibleName(value: string, field: string): string {
  const trimmed = value.trim();
  if (isBlankName(trimmed))
    throw new AppError("validation_failed", `${field}: must not be blank`, { details: { field } });
  return trimmed;
}
