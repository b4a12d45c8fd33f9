// Text people type (names, topics, device names, ids a client makes up): well-formed Unicode without NUL.
// A lone surrogate cannot be stored as UTF-8: SQLite and MongoDB would keep U+FFFD in its place, so the
// value read back would not be the one accepted. Message content and reactions check the same in the
// messages service, with their own byte limits.

import { FormatRegistry, type StringOptions, Type } from "@sinclair/typebox";

export const isText = (value: string): boolean => value.isWellFormed() && !value.includes("\u0000");

FormatRegistry.Set("text", isText);

/** A string schema that also refuses lone surrogates and NUL (422, "Expected string to match 'text' format"). */
export const Text = (options: StringOptions = {}) => Type.String({ ...options, format: "text" });
