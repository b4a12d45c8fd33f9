// User search text -> a query of quoted terms that every term must match. Quoting makes no input syntax:
// in FTS5 a bare AND or ( would be an operator, in MongoDB $text a "-" negates and a quote opens a phrase
// (and quoted phrases are ANDed, which matches SQLite's implicit AND of terms).

import { hasUnspaced, searchWords } from "../lib/segment.ts";

const MAX_TERMS = 16;

/**
 * A word of scripts written without spaces is a phrase of its characters (lib/segment.ts: `"東 京"`), which
 * both stores match where the message's indexed text has them consecutively. Such a phrase is quoted with
 * a space inside each end: MongoDB finds a phrase as a substring of the indexed text, which has a space
 * either side of every such character (searchText), so that it cannot start or end inside a token
 * (`"ส"` inside `สั`); FTS5 reads the spaces as separators.
 */
export function quotedTerms(text: string): string | null {
  const terms = searchWords(text);
  if (terms.length === 0) return null;
  return terms
    .slice(0, MAX_TERMS)
    .map((t) => (hasUnspaced(t) ? `" ${t} "` : `"${t}"`))
    .join(" ");
}
