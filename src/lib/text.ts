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
 * A name shown to others (a display name, a conversation's name), trimmed; one of spaces alone would be no
 * name at all: 422 naming the field.
 */
export function visibleName(value: string, field: string): string {
  const trimmed = value.trim();
  if (!trimmed)
    throw new AppError("validation_failed", `${field}: must not be blank`, { details: { field } });
  return trimmed;
}
