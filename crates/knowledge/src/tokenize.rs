//! Language-aware tokenisation for the BM25 index. Words are split on anything that is not a
//! letter or digit; runs of CJK ideographs, kana and hangul (written without spaces) become
//! overlapping bigrams, so "東京都" matches "東京". Each stemmed language gets its own analyzer
//! (lowercase, long tokens dropped, Snowball stemmer) and its own field; text in other
//! languages and in scripts without stemmers goes to a plain field.

use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer};

/// Languages with their own stemmed field: (field suffix, tantivy stemmer, detector language).
pub const STEMMED: &[(&str, Language, whatlang::Lang)] = &[
    ("en", Language::English, whatlang::Lang::Eng),
    ("de", Language::German, whatlang::Lang::Deu),
    ("fr", Language::French, whatlang::Lang::Fra),
    ("es", Language::Spanish, whatlang::Lang::Spa),
    ("it", Language::Italian, whatlang::Lang::Ita),
    ("pt", Language::Portuguese, whatlang::Lang::Por),
    ("nl", Language::Dutch, whatlang::Lang::Nld),
    ("sv", Language::Swedish, whatlang::Lang::Swe),
    ("ru", Language::Russian, whatlang::Lang::Rus),
    ("ar", Language::Arabic, whatlang::Lang::Ara),
];

/// The field suffix for a text: its detected language's; for short texts the detector is
/// unsure of, the script's most likely language (Latin → English); CJK and the rest → `plain`.
/// A wrong guess only costs some recall on that chunk.
pub fn field_suffix(text: &str) -> &'static str {
    let sample: String = text.chars().take(2000).collect();
    let Some(info) = whatlang::detect(&sample) else { return "plain" };
    if info.confidence() >= 0.2
        && let Some((suffix, _, _)) = STEMMED.iter().find(|(_, _, l)| *l == info.lang())
    {
        return suffix;
    }
    match info.script() {
        whatlang::Script::Latin => "en",
        whatlang::Script::Cyrillic => "ru",
        whatlang::Script::Arabic => "ar",
        _ => "plain",
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0x20000..=0x2FA1F) // supplementary ideographs
}

/// Words, with CJK runs as bigrams.
#[derive(Clone, Default)]
pub struct WordTokenizer;

pub struct WordStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for WordStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

fn push(tokens: &mut Vec<Token>, text: &str, from: usize, to: usize) {
    let position = tokens.len();
    tokens.push(Token { offset_from: from, offset_to: to, position, text: text[from..to].to_owned(), position_length: 1 });
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream {
        let mut tokens = Vec::new();
        let mut word_start: Option<usize> = None;
        let mut cjk: Vec<(usize, usize)> = Vec::new();
        let flush_cjk = |tokens: &mut Vec<Token>, cjk: &mut Vec<(usize, usize)>| {
            match cjk.len() {
                0 => {}
                1 => push(tokens, text, cjk[0].0, cjk[0].1),
                _ => {
                    for pair in cjk.windows(2) {
                        push(tokens, text, pair[0].0, pair[1].1);
                    }
                }
            }
            cjk.clear();
        };
        for (i, c) in text.char_indices() {
            if is_cjk(c) {
                if let Some(s) = word_start.take() {
                    push(&mut tokens, text, s, i);
                }
                cjk.push((i, i + c.len_utf8()));
            } else if c.is_alphanumeric() {
                flush_cjk(&mut tokens, &mut cjk);
                word_start.get_or_insert(i);
            } else {
                flush_cjk(&mut tokens, &mut cjk);
                if let Some(s) = word_start.take() {
                    push(&mut tokens, text, s, i);
                }
            }
        }
        flush_cjk(&mut tokens, &mut cjk);
        if let Some(s) = word_start {
            push(&mut tokens, text, s, text.len());
        }
        WordStream { tokens, next: 0 }
    }
}

pub fn plain_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer).filter(RemoveLongFilter::limit(40)).filter(LowerCaser).build()
}

pub fn stemmed_analyzer(language: Language) -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer).filter(RemoveLongFilter::limit(40)).filter(LowerCaser).filter(Stemmer::new(language)).build()
}

/// The terms an analyzer makes of a text, deduplicated, at most `max`.
pub fn terms(analyzer: &mut TextAnalyzer, text: &str, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while let Some(t) = stream.next() {
        if !out.contains(&t.text) {
            out.push(t.text.clone());
            if out.len() >= max {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_cjk_bigrams_and_stems() {
        let mut a = plain_analyzer();
        assert_eq!(terms(&mut a, "Hello, Wörld! 東京都に行く 🙂 x2", 100), ["hello", "wörld", "東京", "京都", "都に", "に行", "行く", "x2"]);
        let mut en = stemmed_analyzer(Language::English);
        assert_eq!(terms(&mut en, "Running runners ran", 100), ["run", "runner", "ran"]);
        assert_eq!(field_suffix("The quick brown fox jumps over the lazy dog near the river bank today."), "en");
        assert_eq!(field_suffix("Der schnelle braune Fuchs springt über den faulen Hund am Flussufer."), "de");
        assert_eq!(field_suffix("東京都は日本の首都です。"), "plain");
        assert_eq!(terms(&mut a, "a a a b", 100), ["a", "b"]);
        assert_eq!(terms(&mut a, &"word ".repeat(10), 3).len(), 1);
    }
}
