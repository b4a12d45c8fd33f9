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
 * KEPT_MARK's characters, written out: SQLite's tokenizer takes them as parts of tokens (its default has
 * every mark split words), and its index is defined with this list (schema.ts, migration 16), which a
 * change here would not reach without a migration that builds the index again.
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

/** One token of those scripts: a letter or digit and the marks after it. */
const UNIT = String.raw`${UNSPACED}\p{M}*`;
/** A word: letters, digits and `_` (a mark ends one, as in SQLite's tokenizer), with those scripts' marks. */
const WORD = new RegExp(String.raw`(?:${UNIT}|[\p{L}\p{N}_])+`, "gv");
const ANY_UNIT = new RegExp(UNIT, "gv");
const HAS_UNSPACED = new RegExp(UNSPACED, "v");
const DROPPED_MARK = new RegExp(String.raw`[\p{M}--${KEPT_MARK}]`, "gv");

/** True when text holds a character of the scripts written without spaces. */
export const hasUnspaced = (text: string): boolean => HAS_UNSPACED.test(text);

/**
 * The words of text, each as its tokens joined by single spaces: a word of spaced scripts is itself
 * (`Привет`, `café`), a character of the others is a token with the marks it keeps (`東京` → `東 京`,
 * `สวัสดี` → `ส วั ส ดี`), and a word mixing both splits where they meet (`Tシャツ` → `T シ ャ ツ`).
 */
export function searchWords(text: string): string[] {
  return (text.match(WORD) ?? []).map((word) =>
    hasUnspaced(word)
      ? word
          .replace(ANY_UNIT, (unit) => ` ${unit.replace(DROPPED_MARK, "")} `)
          .trim()
          .replace(/ {2,}/g, " ")
      : word,
  );
}

/**
 * What the stores index for a message's text when it holds characters of the unspaced scripts: its words
 * (searchWords), one space apart and one at each end, so that a query's phrase found in it (MongoDB finds
 * a phrase as a substring) starts and ends at whole tokens. Null for any other text, indexed as it is.
 */
export function searchText(text: string): string | null {
  return hasUnspaced(text) ? ` ${searchWords(text).join(" ")} ` : null;
}
