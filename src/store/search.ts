// User search text -> a query of quoted terms that every term must match. Quoting makes no input syntax:
// in FTS5 a bare AND or ( would be an operator, in MongoDB $text a "-" negates and a quote opens a phrase
// (and quoted phrases are ANDed, which matches SQLite's implicit AND of terms).

const MAX_TERMS = 16;

export function quotedTerms(text: string): string | null {
  const terms = text.match(/[\p{L}\p{N}_]+/gu);
  if (!terms) return null;
  return terms
    .slice(0, MAX_TERMS)
    .map((t) => `"${t}"`)
    .join(" ");
}
