//! A GraphQL lexer for the rules checked on the document's text ([`super::source`]):
//! punctuators, names, numbers, strings and block strings with their escapes, with
//! whitespace, commas, byte order marks and comments skipped, each token with its
//! 1-based line and column.
//!
//! Columns count characters, as the parser's positions do; graphql-js counts UTF-16
//! code units, so the two differ only after a character outside the Basic Multilingual
//! Plane on the same line. `\r\n`, `\r` and `\n` each end a line, as the specification
//! says.

use async_graphql_parser::Pos;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of `! $ & ( ) : = @ [ ] { | }`, or `...`.
    Punct,
    /// A name.
    Name,
    /// An integer or a float.
    Number,
    /// A string or a block string, quotes included.
    String,
    /// A character no token starts with, or a string left open.
    Invalid,
}

/// One token of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What it is.
    pub kind: Kind,
    /// Its text as written.
    pub text: &'a str,
    /// Its first byte in the document.
    pub start: usize,
    /// Where it starts.
    pub pos: Pos,
}

impl Token<'_> {
    /// One past its last byte in the document.
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// Whether it is the punctuator `p`.
    pub fn is(&self, p: &str) -> bool {
        self.kind == Kind::Punct && self.text == p
    }
}

/// The tokens of a text, in order.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    /// The next byte to read.
    at: usize,
    line: usize,
    column: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `src`.
    pub fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            at: 0,
            line: 1,
            column: 1,
        }
    }

    fn rest(&self) -> &'a [u8] {
        &self.src.as_bytes()[self.at..]
    }

    fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    /// Moves past one character, keeping the line and column.
    fn bump(&mut self) {
        let Some(c) = self.src[self.at..].chars().next() else {
            return;
        };
        self.at += c.len_utf8();
        match c {
            // The `\n` of a `\r\n` ends the line.
            '\r' if self.peek() == Some(b'\n') => {}
            '\r' | '\n' => {
                self.line += 1;
                self.column = 1;
            }
            _ => self.column += 1,
        }
    }

    fn bump_n(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }

    fn bump_while(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.bump();
        }
    }

    /// Skips whitespace, commas, byte order marks and comments.
    fn skip_ignored(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b',' | b'\n' | b'\r') => self.bump(),
                Some(b'#') => self.bump_while(|b| b != b'\n' && b != b'\r'),
                Some(_) if self.rest().starts_with("\u{feff}".as_bytes()) => self.bump(),
                _ => return,
            }
        }
    }

    /// The rest of a string after its opening quote; `Invalid` if it is left open.
    fn string(&mut self) -> Kind {
        loop {
            match self.peek() {
                None | Some(b'\n' | b'\r') => return Kind::Invalid,
                Some(b'"') => {
                    self.bump();
                    return Kind::String;
                }
                Some(b'\\') => self.bump_n(2),
                Some(_) => self.bump(),
            }
        }
    }

    /// The rest of a block string after its opening `"""`; `Invalid` if it is left open.
    fn block_string(&mut self) -> Kind {
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Kind::Invalid;
            } else if rest.starts_with(b"\\\"\"\"") {
                self.bump_n(4);
            } else if rest.starts_with(b"\"\"\"") {
                self.bump_n(3);
                return Kind::String;
            } else {
                self.bump();
            }
        }
    }

    /// A number: `-`? digits, then `.` digits and an exponent, each optional.
    fn number(&mut self) -> Kind {
        if self.peek() == Some(b'-') {
            self.bump();
        }
        self.bump_while(|b| b.is_ascii_digit());
        if self.peek() == Some(b'.') {
            self.bump();
            self.bump_while(|b| b.is_ascii_digit());
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.bump();
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.bump();
            }
            self.bump_while(|b| b.is_ascii_digit());
        }
        Kind::Number
    }

    /// Reads the token that starts here.
    fn token(&mut self, first: u8) -> Kind {
        match first {
            b'!' | b'$' | b'&' | b'(' | b')' | b':' | b'=' | b'@' | b'[' | b']' | b'{' | b'|'
            | b'}' => {
                self.bump();
                Kind::Punct
            }
            b'.' if self.rest().starts_with(b"...") => {
                self.bump_n(3);
                Kind::Punct
            }
            b'"' if self.rest().starts_with(b"\"\"\"") => {
                self.bump_n(3);
                self.block_string()
            }
            b'"' => {
                self.bump();
                self.string()
            }
            b'-' | b'0'..=b'9' => self.number(),
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                self.bump_while(|b| b == b'_' || b.is_ascii_alphanumeric());
                Kind::Name
            }
            _ => {
                self.bump();
                Kind::Invalid
            }
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        self.skip_ignored();
        let first = self.peek()?;
        let (start, pos) = (self.at, Pos::from((self.line, self.column)));
        let kind = self.token(first);
        Some(Token {
            kind,
            text: &self.src[start..self.at],
            start,
            pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (kind, text, line, column) of each token.
    fn lex(src: &str) -> Vec<(Kind, &str, usize, usize)> {
        Lexer::new(src)
            .map(|t| (t.kind, t.text, t.pos.line, t.pos.column))
            .collect()
    }

    #[test]
    fn punctuators_names_and_numbers_with_their_positions() {
        use Kind::*;
        assert_eq!(
            lex("query Q($a: [In!] = -1.5e+3) {\n  ...F, x: f(n: 0) @d }"),
            vec![
                (Name, "query", 1, 1),
                (Name, "Q", 1, 7),
                (Punct, "(", 1, 8),
                (Punct, "$", 1, 9),
                (Name, "a", 1, 10),
                (Punct, ":", 1, 11),
                (Punct, "[", 1, 13),
                (Name, "In", 1, 14),
                (Punct, "!", 1, 16),
                (Punct, "]", 1, 17),
                (Punct, "=", 1, 19),
                (Number, "-1.5e+3", 1, 21),
                (Punct, ")", 1, 28),
                (Punct, "{", 1, 30),
                (Punct, "...", 2, 3),
                (Name, "F", 2, 6),
                (Name, "x", 2, 9),
                (Punct, ":", 2, 10),
                (Name, "f", 2, 12),
                (Punct, "(", 2, 13),
                (Name, "n", 2, 14),
                (Punct, ":", 2, 15),
                (Number, "0", 2, 17),
                (Punct, ")", 2, 18),
                (Punct, "@", 2, 20),
                (Name, "d", 2, 21),
                (Punct, "}", 2, 23),
            ]
        );
    }

    #[test]
    fn strings_block_strings_and_comments_are_one_token_or_none() {
        use Kind::*;
        let src =
            "\u{feff}a(s: \"x \\\" { y: 1 }\" # a: { b }\n b: \"\"\"\n { \\\"\"\" c: \"\"\" e)";
        assert_eq!(
            lex(src),
            vec![
                (Name, "a", 1, 2),
                (Punct, "(", 1, 3),
                (Name, "s", 1, 4),
                (Punct, ":", 1, 5),
                (String, "\"x \\\" { y: 1 }\"", 1, 7),
                (Name, "b", 2, 2),
                (Punct, ":", 2, 3),
                (String, "\"\"\"\n { \\\"\"\" c: \"\"\"", 2, 5),
                (Name, "e", 3, 16),
                (Punct, ")", 3, 17),
            ]
        );
    }

    #[test]
    fn columns_count_characters_and_every_line_terminator_ends_a_line() {
        let positions: Vec<(usize, usize)> = Lexer::new("\"é✓\" a\r\nb\rc\nd")
            .map(|t| (t.pos.line, t.pos.column))
            .collect();
        assert_eq!(positions, vec![(1, 1), (1, 6), (2, 1), (3, 1), (4, 1)]);
    }

    #[test]
    fn what_starts_no_token_and_strings_left_open_are_invalid() {
        use Kind::*;
        assert_eq!(
            lex("a % \"open\nb"),
            vec![
                (Name, "a", 1, 1),
                (Invalid, "%", 1, 3),
                (Invalid, "\"open", 1, 5),
                (Name, "b", 2, 1)
            ]
        );
        assert_eq!(
            lex("\"\"\"never closed"),
            vec![(Invalid, "\"\"\"never closed", 1, 1)]
        );
        assert_eq!(lex(".."), vec![(Invalid, ".", 1, 1), (Invalid, ".", 1, 2)]);
    }
}
