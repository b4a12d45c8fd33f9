// Text people type (names, topics, device names, ids a client makes up): well-formed Unicode without NUL.
// A lone surrogate cannot be stored as UTF-8: SQLite and MongoDB would keep U+FFFD in its place, so the
// value read back would not be the one accepted. Message content and reactions check the same in the
// messages service, with their own byte limits.

import { FormatRegistry, type StringOptions, Type } from "@sinclair/typebox";
import { AppError } from "./errors.ts";

export const isText = (value: string): boolean => value.isWellFormed() && !value.includes("\u0000");

FormatRegistry.Set("text", isText);

/**
 * Characters as limits count them: Unicode code points, so that an emoji is one, as a letter is (UTF-16
 * units counted it as two). Counted without allocating: the string's units less its surrogate pairs.
 */
export function characters(value: string): number {
  let pairs = 0;
  for (let i = 0; i < value.length - 1; i++) {
    const unit = value.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        pairs++;
        i++;
      }
    }
  }
  return value.length - pairs;
}

/**
 * A string schema whose minLength and maxLength count characters (code points), not UTF-16 units; with
 * `text`, it also refuses lone surrogates and NUL. TypeBox counts units, so the count is a format of its
 * own for each pair of bounds (registered once), and the schema's own bounds are the units those
 * characters can take (one or two each), which refuse a far longer string before it is counted.
 */
function bounded(options: StringOptions, text: boolean) {
  const { minLength, maxLength, ...rest } = options;
  if (minLength === undefined && maxLength === undefined)
    return Type.String(text ? { ...rest, format: "text" } : rest);
  const [min, max] = [minLength ?? 0, maxLength ?? Number.POSITIVE_INFINITY];
  const format = `${text ? "text" : "characters"}:${min}-${maxLength ?? ""}`;
  if (!FormatRegistry.Has(format)) {
    FormatRegistry.Set(format, (value) => {
      if (value.length > 2 * max || (text && !isText(value))) return false;
      const count = characters(value);
      return count >= min && count <= max;
    });
  }
  const span = maxLength === undefined ? `at least ${min}` : min > 0 ? `${min} to ${max}` : `at most ${max}`;
  return Type.String({
    ...rest,
    minLength: min,
    ...(maxLength === undefined ? {} : { maxLength: 2 * maxLength }),
    format,
    error: `must be ${span} characters${text ? " of text (no NUL, no lone surrogate)" : ""}`,
  });
}

/**
 * Free text: a string schema that also refuses lone surrogates and NUL (422, "Expected string to match
 * 'text' format"); its minLength and maxLength count characters (code points).
 */
export const Text = (options: StringOptions = {}) => bounded(options, true);

/** A string schema whose minLength and maxLength count characters (code points), as Text's do. */
export const Characters = (options: StringOptions = {}) => bounded(options, false);

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
