// The words message search looks for, in scripts written with spaces between words and without. Chinese,
// Japanese, Thai, Lao, Khmer and Burmese put no space between words, so a tokenizer that splits at spaces
// and punctuation takes a whole sentence as one word, and no word inside it is ever found. With no
// dictionary to find their words, each character of those scripts is a token of its own, and a query's run
// of them is searched as a phrase: the same characters, consecutive. Both stores index what this returns
// and search for what it returns for the query, so that the two always split text the same way.
//
// One character a token rather than overlapping pairs (bigrams): a phrase of single characters matches
// exactly where a phrase of the pairs would, a one-character word (common in Chinese and Japanese: 猫, 雨)
// is found too, and MongoDB's $text, which has no prefix search, needs no second index of single
// characters for it; the index holds one entry per character either way, over a few thousand distinct
// tokens instead of a pair for every neighbour. The price: a common character's postings are long, and a
// phrase of them reads them all.

// Combining marks: a mark with Unicode's Diacritic property (Arabic harakat, Hebrew niqqud, Latin accents,
// the Devanagari virama and nukta) is dropped and its word goes on, as MongoDB's text index drops it, so
// that a word written with or without it is the same token (كَتَبَ is كتب); so are the other marks of
// Arabic and Hebrew (the superscript alef, Quranic annotation signs). Every other mark is part of the
// letter before it (the vowel signs of Devanagari, Bengali, Tamil and the rest of the Brahmic scripts):
// हिंदी is one word, not the pieces between its vowel signs.

/**
 * Letters and digits of the scripts written without spaces between words. Han and kana by their script
 * extensions, which count the marks the two share (々, the prolonged sound mark ー, Common by script) and
 * leave out Hangul, whose words are spaced; Thai, Lao, Khmer and Myanmar by script alone, so that U+02BC
 * (a letter apostrophe of Latin orthographies that Thai lists too) stays inside the Latin words it joins.
 */
const UNSPACED = String.raw`[[\p{L}\p{N}]&&[\p{scx=Han}\p{scx=Hira}\p{scx=Kana}\p{sc=Thai}\p{sc=Lao}\p{sc=Khmer}\p{sc=Mymr}]]`;

/**
 * The marks a character of those scripts keeps in its token (the vowel signs of Thai, Lao, Khmer and
 * Myanmar, which tell words apart). Marks with Unicode's Diacritic property (Thai tone marks, the Khmer
 * coeng, the Myanmar asat) are dropped, as MongoDB's text index drops them, and so are marks of other
 * scripts (variation selectors, the combining kana voicing marks): both stores then hold the same tokens.
 */
const KEPT_MARK = String.raw`[[\p{M}&&[\p{sc=Thai}\p{sc=Lao}\p{sc=Khmer}\p{sc=Mymr}]]--\p{Diacritic}]`;

/**
 * KEPT_MARK's characters, written out: the marks SQLite's tokenizer took as parts of tokens from migration
 * 16 (its default has every mark split words) until migration 18 gave it every mark (schema.ts). Kept as
 * migration 16 used it, which a database migrated from before it still runs.
 */
export const TOKEN_MARKS = [
  [0x0e31, 0x0e31],
  [0x0e34, 0x0e39],
  [0x0e4d, 0x0e4d],
  [0x0eb1, 0x0eb1],
  [0x0eb4, 0x0eb9],
  [0x0ebb, 0x0ebc],
  [0x0ecd, 0x0ece],
  [0x102b, 0x1036],
  [0x1038, 0x1038],
  [0x103b, 0x103e],
  [0x1056, 0x1059],
  [0x105e, 0x1060],
  [0x1062, 0x1062],
  [0x1067, 0x1068],
  [0x1071, 0x1074],
  [0x1082, 0x1086],
  [0x109c, 0x109d],
  [0x17b4, 0x17c8],
]
  .flatMap(([from = 0, to = 0]) =>
    Array.from({ length: to - from + 1 }, (_, i) => String.fromCodePoint(from + i)),
  )
  .join("");

/**
 * The marks search drops from every word: those with the Diacritic property (U+064B–U+0652 the harakat,
 * U+05B0–U+05BD, U+05BF, U+05C1–U+05C2, U+05C4–U+05C5, U+05C7 the Hebrew points, U+0591–U+05AF its
 * cantillation, U+094D the virama, …), every mark of the Arabic and Hebrew scripts besides (U+0610–U+061A,
 * U+0653–U+065F, U+0670, U+06D6–U+06ED, U+08D3–U+08FF, …), and the whole block of Latin combining
 * accents (U+0300–U+036F), which SQLite's tokenizer drops itself (remove_diacritics 2).
 */
const DROPPED_MARK = String.raw`[\p{M}&&[\p{Diacritic}\p{scx=Arab}\p{scx=Hebr}\u0300-\u036f]]`;

/** One token of those scripts: a letter or digit and the marks after it. */
const UNIT = String.raw`${UNSPACED}\p{M}*`;
/** A word: letters, digits and `_`, each with the marks after it (dropped ones included, taken out below). */
const WORD = new RegExp(String.raw`(?:${UNIT}|[\p{L}\p{N}_]\p{M}*)+`, "gv");
const ANY_UNIT = new RegExp(UNIT, "gv");
const HAS_UNSPACED = new RegExp(UNSPACED, "v");
const HAS_DROPPED = new RegExp(DROPPED_MARK, "v");
const DROPPED = new RegExp(DROPPED_MARK, "gv");
const NOT_KEPT_IN_UNIT = new RegExp(String.raw`[\p{M}--${KEPT_MARK}]`, "gv");

/** True when text holds a character of the scripts written without spaces. */
export const hasUnspaced = (text: string): boolean => HAS_UNSPACED.test(text);

/**
 * True when text's indexed form differs from what the stores' tokenizers make of the text itself: it holds
 * characters of unspaced scripts, or marks that search drops (SQLite's tokenizer keeps every mark in its
 * word, and MongoDB's keeps the non-diacritic ones). Only such messages are stored with a copy.
 */
export const needsSearchText = (text: string): boolean => HAS_UNSPACED.test(text) || HAS_DROPPED.test(text);

/**
 * The words of text, each as its tokens joined by single spaces: a word of spaced scripts is itself
 * (`Привет`, `café`), a character of the others is a token with the marks it keeps (`東京` → `東 京`,
 * `สวัสดี` → `ส วั ส ดี`), and a word mixing both splits where they meet (`Tシャツ` → `T シ ャ ツ`).
 */
export function searchWords(text: string): string[] {
  return (text.match(WORD) ?? []).map((found) => {
    const word = found.replace(DROPPED, "");
    return hasUnspaced(word)
      ? word
          .replace(ANY_UNIT, (unit) => ` ${unit.replace(NOT_KEPT_IN_UNIT, "")} `)
          .trim()
          .replace(/ {2,}/g, " ")
      : word;
  });
}

/**
 * What the stores index for a message's text when it needs a copy (needsSearchText): its words
 * (searchWords), one space apart and one at each end, so that a query's phrase found in it (MongoDB finds
 * a phrase as a substring) starts and ends at whole tokens. Null for any other text, indexed as it is.
 */
export function searchText(text: string): string | null {
  return needsSearchText(text) ? ` ${searchWords(text).join(" ")} ` : null;
}
