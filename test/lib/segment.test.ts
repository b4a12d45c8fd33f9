// The words search indexes and looks for: characters of scripts written without spaces a token each (with
// the vowel signs they carry), every other word whole, as both stores need them.

import { describe, expect, it } from "bun:test";
import { hasUnspaced, needsSearchText, searchText, searchWords, TOKEN_MARKS } from "../../src/lib/segment.ts";

describe("searchWords", () => {
  it("sets each Han, kana, Thai, Lao, Khmer and Myanmar character apart", () => {
    expect(searchWords("你好世界")).toEqual(["你 好 世 界"]);
    expect(searchWords("東京に行きます")).toEqual(["東 京 に 行 き ま す"]);
    expect(searchWords("ｶﾀｶﾅ")).toEqual(["ｶ ﾀ ｶ ﾅ"]);
    expect(searchWords("ภาษาไทย")).toEqual(["ภ า ษ า ไ ท ย"]);
    expect(searchWords("ສະບາຍດີ")).toEqual(["ສ ະ ບ າ ຍ ດີ"]);
    expect(searchWords("ភាសា")).toEqual(["ភា សា"]);
    expect(searchWords("မြန်မာ")).toEqual(["မြ န မာ"]);
  });

  it("keeps a Thai, Lao, Khmer or Myanmar vowel sign with its letter, and drops tone marks and other diacritics", () => {
    // สวัสดี: ั and ี are vowel signs.
    expect(searchWords("สวัสดี")).toEqual(["ส วั ส ดี"]);
    // ไม่ (not) and ไม้ (wood) differ by a tone mark alone, which MongoDB's index drops too.
    expect(searchWords("ไม่")).toEqual(["ไ ม"]);
    expect(searchWords("ไม้")).toEqual(["ไ ม"]);
    // The Khmer coeng (្) is a diacritic; the vowel sign ួ is kept.
    expect(searchWords("សួស្តី")).toEqual(["សួ ស តី"]);
    // A variation selector or a combining voicing mark after a Han or kana character goes.
    expect(searchWords("葛\u{e0100}飾")).toEqual(["葛 飾"]);
    expect(searchWords("か\u3099")).toEqual(["か"]);
  });

  it("counts the marks kana writing shares with other scripts (ー, 々) as its characters", () => {
    expect(searchWords("コーヒー")).toEqual(["コ ー ヒ ー"]);
    expect(searchWords("人々")).toEqual(["人 々"]);
  });

  it("splits a word where spaced and unspaced scripts meet, and keeps the spaced part whole", () => {
    expect(searchWords("iPhone手机")).toEqual(["iPhone 手 机"]);
    expect(searchWords("Tシャツ")).toEqual(["T シ ャ ツ"]);
    expect(searchWords("第3回")).toEqual(["第 3 回"]);
  });

  it("finds the words of spaced scripts as before: letters, digits and _, punctuation ending one", () => {
    expect(searchWords("quick brown fox")).toEqual(["quick", "brown", "fox"]);
    expect(searchWords("Привет, мир! مرحبا")).toEqual(["Привет", "мир", "مرحبا"]);
    expect(searchWords("한국어 텍스트")).toEqual(["한국어", "텍스트"]);
    expect(searchWords('"foo AND (bar)* foo_bar')).toEqual(["foo", "AND", "bar", "foo_bar"]);
    // A decomposed accent goes, as SQLite's tokenizer folds a composed one: the word goes on.
    expect(searchWords("cafe\u0301s café")).toEqual(["cafes", "café"]);
    // U+02BC joins Latin words (Thai lists it among its characters too): not set apart.
    expect(searchWords("Kyivʼs")).toEqual(["Kyivʼs"]);
    expect(searchWords("🎉 ... ---")).toEqual([]);
  });

  it("finds a query's words inside the indexed text, consecutively: the same function on both sides", () => {
    const indexed = searchText("我的iPhone手机坏了，明天去东京。") ?? "";
    for (const query of ["手机", "iPhone手机", "东京", "明天去", "了"])
      expect(indexed).toContain(` ${searchWords(query).join(" ")} `);
    for (const query of ["京东", "机手", "Phone手机"])
      expect(indexed).not.toContain(` ${searchWords(query).join(" ")} `);
  });
});

describe("searchWords with combining marks", () => {
  it("drops the Arabic harakat and other Arabic marks: a word with them is the word without", () => {
    expect(searchWords("كَتَبَ")).toEqual(["كتب"]);
    expect(searchWords("الْكِتَابُ")).toEqual(["الكتاب"]);
    // U+0670, the superscript alef, is no diacritic to Unicode but is Arabic pointing: it goes too.
    expect(searchWords("هٰذا")).toEqual(["هذا"]);
    expect(searchWords("كتب")).toEqual(["كتب"]);
  });

  it("drops the Hebrew points and cantillation", () => {
    expect(searchWords("שָׁלוֹם")).toEqual(["שלום"]);
    expect(searchWords("בְּרֵאשִׁ֖ית")).toEqual(["בראשית"]);
  });

  it("keeps the vowel signs of Devanagari and the other Brahmic scripts inside the word, and drops the virama", () => {
    expect(searchWords("हिंदी भाषा")).toEqual(["हिंदी", "भाषा"]);
    // The virama (U+094D) and nukta (U+093C) are diacritics, which MongoDB's index drops as well.
    expect(searchWords("नमस्ते")).toEqual(["नमसते"]);
    expect(searchWords("ज़रूर")).toEqual(["जरूर"]);
    expect(searchWords("বাংলা தமிழ் తెలుగు")).toEqual(["বাংলা", "தமிழ", "తెలుగు"]);
  });
});

describe("searchText", () => {
  it("is the text's words a space apart with a space at each end, for text of unspaced scripts only", () => {
    expect(searchText("明日は東京、trip!")).toBe(" 明 日 は 東 京 trip ");
    expect(searchText("quick brown fox")).toBeNull();
    expect(searchText("한국어")).toBeNull();
    expect(searchText("")).toBeNull();
  });

  it("copies text with the marks search drops, and leaves the marks kept to the tokenizers", () => {
    expect(searchText("كَتَبَ الدرس")).toBe(" كتب الدرس ");
    expect(searchText("שָׁלוֹם")).toBe(" שלום ");
    expect(searchText("नमस्ते!")).toBe(" नमसते ");
    expect(searchText("كتب الدرس")).toBeNull();
    expect(searchText("हिंदी भाषा")).toBeNull();
    expect(needsSearchText("café")).toBe(false);
    expect(needsSearchText("cafe\u0301")).toBe(true);
  });

  it("marks text that holds such characters", () => {
    expect(hasUnspaced("hello 世界")).toBe(true);
    expect(hasUnspaced("hello")).toBe(false);
    // Ideographic punctuation alone is no word.
    expect(hasUnspaced("、。「」")).toBe(false);
  });
});

describe("TOKEN_MARKS", () => {
  it("lists exactly the marks searchWords keeps, the list SQLite's tokenizer was given", () => {
    const kept: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const mark = String.fromCodePoint(cp);
      if (!/\p{M}/u.test(mark)) continue;
      // A mark kept after a Thai letter stays in its token.
      if (searchWords(`ก${mark}`)[0] === `ก${mark}`) kept.push(mark);
    }
    expect(kept.join("")).toBe(TOKEN_MARKS);
  });
});
