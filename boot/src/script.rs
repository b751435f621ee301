//! The command language of the shell and of boot scripts: the part of U-Boot's hush that boot
//! scripts use. Commands are separated by `;` or newlines and chained with `&&` / `||`;
//! `if <list>; then <list>; [elif <list>; then <list>;] [else <list>;] fi`,
//! `for name in words...; do <list>; done`, `while <list>; do <list>; done` and `until` nest;
//! `$name`, `${name}` and `$?` expand (a `for` variable, a hush local as in U-Boot, first, then
//! the [`Env`]; unquoted expansions split on blanks, `"..."` keeps one word, `'...'` expands
//! nothing); `#` starts a comment; `\` escapes one character.
//!
//! Built-ins: `echo [-n]`, `setenv name [value...]` (no value = delete), `printenv [name...]`,
//! `env exists|set|print|delete|default`, `run var...`, `source [addr]`, `sleep N[.frac]`,
//! `test` (U-Boot's, [`cond`]), `itest` and `setexpr` ([`expr`]), `true`, `false`, `exit [n]`.
//! Every other command goes to the firmware's [`Commands`]; an unknown one fails with U-Boot's
//! "Unknown command 'x' - try 'help'" and the script goes on, as in U-Boot.
//!
//! A whole text is parsed before anything runs, so a script with a syntax error runs nothing and
//! the error says where (`script:3:12: unexpected 'fi'`). Everything is bounded: text length,
//! nesting, `run` and `source` depth, arguments, expanded bytes, and the work one call may do: a
//! step budget charged for every command executed, every loop iteration, and every byte parsed,
//! expanded or printed (`run` can fan out, and each `run` parses its variable's text again).
//!
//! [`parse_legacy_script_image`] unwraps U-Boot's `boot.scr` (a `mkimage -T script` image).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::console::{Clock, Console};
use crate::env::Env;

mod cond;
mod expr;
mod regex;

/// Longest script text accepted.
pub const MAX_SCRIPT: usize = 64 << 10;
/// Deepest nesting of `if`, `for`, `while` and `until` in one text.
pub const MAX_IF_NESTING: usize = 16;
/// Deepest `run` nesting (U-Boot: "run: nesting too deep").
pub const MAX_RUN_DEPTH: usize = 16;
/// Deepest `source` nesting (a script image that sources itself stops here).
pub const MAX_SOURCE_DEPTH: usize = 8;
/// Most `for` variables (hush locals) one interpreter keeps.
pub const MAX_LOCALS: usize = 32;
/// Deepest combined nesting (`if` inside `run` inside `if`...) while running.
pub const MAX_DEPTH: usize = 64;
/// Most arguments of one command, after expansion (U-Boot's `CONFIG_SYS_MAXARGS`).
pub const MAX_ARGS: usize = 64;
/// Most bytes of one command's arguments after expansion.
pub const MAX_EXPANDED: usize = 32 << 10;
/// The step budget of one top-level call ([`Interp::run`], [`Interp::exec`]): every command
/// executed and every loop iteration costs one step, and every [`BYTES_PER_STEP`] bytes of text parsed (the script, and
/// the variable of every `run`), of arguments expanded or of `printenv` output cost one more. So
/// one call parses, expands and prints at most `MAX_STEPS * BYTES_PER_STEP` bytes (1.25 MiB, plus
/// the one command that crosses the line), whatever the fan-out.
pub const MAX_STEPS: u32 = 10_000;
/// Bytes parsed, expanded or printed that cost one step. Ordinary scripts stay far inside the
/// budget (a 64 KiB `boot.scr` parsed once costs 512 steps; a 500-byte `bootargs` expansion
/// costs 3); `run` of a 30 KiB variable costs 240 steps, so nested fan-out of large variables
/// stops after about 40 of them instead of parsing hundreds of megabytes.
pub const BYTES_PER_STEP: u64 = 128;
/// Longest `sleep`, in seconds.
pub const MAX_SLEEP_S: u64 = 3600;
/// Largest environment `setenv` may grow (bytes of `name=value\0`).
pub const MAX_ENV_BYTES: usize = 64 << 10;

/// Built-in commands and a one-line help for each (for the firmware's `help`).
pub const BUILTINS: &[(&str, &str)] = &[
    ("echo", "echo args to console"),
    (
        "env",
        "env exists name | set name [value...] | print [name...] | delete name... | default [-a | name...] - environment handling commands",
    ),
    ("exit", "exit script"),
    ("false", "do nothing, unsuccessfully"),
    (
        "itest",
        "itest[.b, .w, .l, .q, .s] value1 <op> value2 - return true/false on integer (hex) compare",
    ),
    ("printenv", "print environment variables"),
    ("run", "run commands in an environment variable"),
    (
        "setexpr",
        "setexpr[.b, .w, .l, .q] name value1 [<op> value2] | setexpr name [g]sub r s [t] - set a variable to an expression (hex)",
    ),
    ("setenv", "set environment variables"),
    (
        "sleep",
        "delay execution for some time",
    ),
    (
        "source",
        "source [addr] - run the script image (mkimage -T script) at addr (default ${loadaddr}, else ${scriptaddr})",
    ),
    ("test", "minimal test like /bin/sh"),
    ("true", "do nothing, successfully"),
];

const CTRL_C: u8 = 0x03;

/// What is wrong with a script's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syntax {
    /// A token that may not stand here (`fi` without `if`, `&&` at the start...).
    Unexpected(String),
    /// The text ended inside a construct; `expected` is what would close it.
    UnexpectedEnd { expected: &'static str },
    /// A quote or `${` without its closing character.
    Unterminated(&'static str),
    /// `${}` or a `${...}` name with characters a variable cannot have.
    BadSubstitution,
    /// A construct of full hush this language leaves out (`case`, `|`...).
    Unsupported(&'static str),
    /// `if`/`for`/`while`/`until` nested deeper than `max`.
    NestingTooDeep { max: usize },
    /// A command with more than `max` words.
    TooManyArgs { max: usize },
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Syntax::Unexpected(t) => write!(f, "unexpected '{t}'"),
            Syntax::UnexpectedEnd { expected } => {
                write!(f, "unexpected end of script, expected '{expected}'")
            }
            Syntax::Unterminated(what) => write!(f, "unterminated {what}"),
            Syntax::BadSubstitution => write!(f, "bad substitution"),
            Syntax::Unsupported(what) => write!(f, "{what} is not supported"),
            Syntax::NestingTooDeep { max } => {
                write!(f, "'if'/'for'/'while' nested deeper than {max}")
            }
            Syntax::TooManyArgs { max } => write!(f, "more than {max} words in one command"),
        }
    }
}

/// Everything that stops a script (a failing command does not: it sets `$?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The text is malformed; `name` is the script's name (or the variable `run` ran).
    Syntax {
        name: String,
        line: u32,
        col: u32,
        what: Syntax,
    },
    /// The text is longer than `max` bytes.
    TooLong {
        name: String,
        len: usize,
        max: usize,
    },
    /// `run` nested deeper than `max`.
    RunTooDeep { max: usize },
    /// `source` nested deeper than `max`.
    SourceTooDeep { max: usize },
    /// More than `max` distinct `for` variables.
    TooManyLocals { max: usize },
    /// `if`/`run` nested deeper than `max` while running.
    NestingTooDeep { max: usize },
    /// The call used up its budget of `max` steps ([`MAX_STEPS`]); `used` says on what.
    TooManySteps { max: u32, used: Usage },
    /// A command expanded to more than `max` arguments.
    TooManyArgs { max: usize },
    /// A command expanded to more than `max` bytes.
    ExpansionTooLong { max: usize },
    /// `boot.scr`: fewer bytes than its header or its size says (`needed` vs `found`).
    ImageTruncated { needed: usize, found: usize },
    /// `boot.scr`: the first word is not the legacy image magic.
    ImageBadMagic { found: u32 },
    /// `boot.scr`: CRC32 mismatch over the header or the data.
    ImageCrc {
        part: &'static str,
        expected: u32,
        found: u32,
    },
    /// `boot.scr`: the image type is not `script` (6).
    ImageNotScript { found: u8 },
    /// `boot.scr`: the script is compressed (only `none` is accepted).
    ImageCompressed { comp: u8 },
    /// `boot.scr`: the size table is empty, unterminated, or its first size overruns the data.
    ImageBadSizeTable { offset: usize },
    /// `boot.scr`: the script text is not UTF-8 at byte `offset` of the text.
    ImageNotUtf8 { offset: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax {
                name,
                line,
                col,
                what,
            } => write!(f, "{name}:{line}:{col}: {what}"),
            Error::TooLong { name, len, max } => {
                write!(f, "{name}: {len} bytes long, expected at most {max}")
            }
            Error::RunTooDeep { max } => write!(f, "run: nesting too deep (more than {max})"),
            Error::SourceTooDeep { max } => {
                write!(f, "source: nesting too deep (more than {max})")
            }
            Error::TooManyLocals { max } => {
                write!(f, "script: more than {max} distinct 'for' variables")
            }
            Error::NestingTooDeep { max } => {
                write!(f, "script: nesting too deep (more than {max})")
            }
            Error::TooManySteps { max, used } => write!(
                f,
                "script: step budget of {max} used up ({} commands, {} bytes parsed, {} bytes \
                 expanded, {} bytes printed; one step per command and per {BYTES_PER_STEP} \
                 bytes), stopped",
                used.commands, used.parsed_bytes, used.expanded_bytes, used.printed_bytes
            ),
            Error::TooManyArgs { max } => write!(f, "script: more than {max} arguments"),
            Error::ExpansionTooLong { max } => {
                write!(f, "script: command longer than {max} bytes after expansion")
            }
            Error::ImageTruncated { needed, found } => {
                write!(
                    f,
                    "boot.scr: truncated: {needed} bytes needed, {found} found"
                )
            }
            Error::ImageBadMagic { found } => write!(
                f,
                "boot.scr: bad magic {found:#010x}, expected {IH_MAGIC:#010x}"
            ),
            Error::ImageCrc {
                part,
                expected,
                found,
            } => write!(
                f,
                "boot.scr: bad {part} CRC32: expected {expected:#010x}, found {found:#010x}"
            ),
            Error::ImageNotScript { found } => write!(
                f,
                "boot.scr: image type {found}, expected {IH_TYPE_SCRIPT} (script)"
            ),
            Error::ImageCompressed { comp } => {
                write!(f, "boot.scr: compression {comp}, expected 0 (none)")
            }
            Error::ImageBadSizeTable { offset } => {
                write!(f, "boot.scr: bad size table at data offset {offset}")
            }
            Error::ImageNotUtf8 { offset } => {
                write!(f, "boot.scr: script text is not UTF-8 at byte {offset}")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax tree

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    /// `quoted`: inside `"..."`, so not split into words.
    Var {
        name: String,
        quoted: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Word {
    parts: Vec<Part>,
    /// Any quote in the word: it stays an argument even when it expands to nothing.
    quoted: bool,
}

impl Word {
    fn keyword(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Lit(s)] if !self.quoted => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Command {
    Simple(Vec<Word>),
    If {
        branches: Vec<(Vec<AndOr>, Vec<AndOr>)>,
        otherwise: Option<Vec<AndOr>>,
    },
    /// `for var in words; do body; done`.
    For {
        var: String,
        words: Vec<Word>,
        body: Vec<AndOr>,
    },
    /// `while cond; do body; done` (`until`: the condition negated).
    Loop {
        until: bool,
        cond: Vec<AndOr>,
        body: Vec<AndOr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
struct AndOr {
    first: Command,
    rest: Vec<(Op, Command)>,
}

/// A parsed script, ready to run any number of times.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    items: Vec<AndOr>,
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Word),
    /// `;` (false) or a newline (true).
    Sep(bool),
    And,
    Or,
    Eof,
}

struct Token {
    tok: Tok,
    line: u32,
    col: u32,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.pos..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn next_token(&mut self) -> Result<Token, (u32, u32, Syntax)> {
        // Blanks, line continuations and comments.
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r') => {
                    self.bump();
                }
                Some('\\') if self.peek2() == Some('\n') => {
                    self.bump();
                    self.bump();
                }
                Some('#') => {
                    while !matches!(self.peek(), None | Some('\n')) {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        let (line, col) = (self.line, self.col);
        let tok = match self.peek() {
            None => Tok::Eof,
            Some(c @ ('\n' | ';')) => {
                self.bump();
                Tok::Sep(c == '\n')
            }
            Some('&') => {
                self.bump();
                if self.peek() != Some('&') {
                    return Err((line, col, Syntax::Unsupported("'&' (background jobs)")));
                }
                self.bump();
                Tok::And
            }
            Some('|') => {
                self.bump();
                if self.peek() != Some('|') {
                    return Err((line, col, Syntax::Unsupported("'|' (pipes)")));
                }
                self.bump();
                Tok::Or
            }
            Some(_) => Tok::Word(self.word()?),
        };
        Ok(Token { tok, line, col })
    }

    fn word(&mut self) -> Result<Word, (u32, u32, Syntax)> {
        let mut w = Word {
            parts: Vec::new(),
            quoted: false,
        };
        fn lit(w: &mut Word, c: char) {
            if let Some(Part::Lit(s)) = w.parts.last_mut() {
                s.push(c);
            } else {
                w.parts.push(Part::Lit(c.to_string()));
            }
        }
        while let Some(c) = self.peek() {
            let (line, col) = (self.line, self.col);
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' => break,
                '\'' => {
                    self.bump();
                    w.quoted = true;
                    loop {
                        match self.bump() {
                            None => return Err((line, col, Syntax::Unterminated("single quote"))),
                            Some('\'') => break,
                            Some(c) => lit(&mut w, c),
                        }
                    }
                }
                '"' => {
                    self.bump();
                    w.quoted = true;
                    loop {
                        match self.peek() {
                            None => return Err((line, col, Syntax::Unterminated("double quote"))),
                            Some('"') => {
                                self.bump();
                                break;
                            }
                            Some('\\') => {
                                self.bump();
                                match self.peek() {
                                    Some('\n') => {
                                        self.bump();
                                    }
                                    Some(e @ ('"' | '\\' | '$')) => {
                                        self.bump();
                                        lit(&mut w, e);
                                    }
                                    _ => lit(&mut w, '\\'),
                                }
                            }
                            Some('$') => self.dollar(&mut w, true)?,
                            Some(c) => {
                                self.bump();
                                lit(&mut w, c);
                            }
                        }
                    }
                }
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some('\n') => {}
                        Some(e) => lit(&mut w, e),
                        None => lit(&mut w, '\\'),
                    }
                }
                '$' => self.dollar(&mut w, false)?,
                c => {
                    self.bump();
                    lit(&mut w, c);
                }
            }
        }
        Ok(w)
    }

    /// At a `$`: a variable reference, or a literal `$`.
    fn dollar(&mut self, w: &mut Word, quoted: bool) -> Result<(), (u32, u32, Syntax)> {
        let (line, col) = (self.line, self.col);
        self.bump();
        let name = match self.peek() {
            Some('{') => {
                self.bump();
                let start = self.pos;
                loop {
                    match self.peek() {
                        None | Some('\n') => {
                            return Err((line, col, Syntax::Unterminated("'${'")));
                        }
                        Some('}') => break,
                        Some(_) => {
                            self.bump();
                        }
                    }
                }
                let name = &self.src[start..self.pos];
                self.bump();
                if name.is_empty() || (name != "?" && !name.chars().all(valid_var_char)) {
                    return Err((line, col, Syntax::BadSubstitution));
                }
                name.to_string()
            }
            Some('?') => {
                self.bump();
                "?".to_string()
            }
            Some(c) if is_name_char(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_name_char) {
                    self.bump();
                }
                self.src[start..self.pos].to_string()
            }
            _ => {
                match w.parts.last_mut() {
                    Some(Part::Lit(s)) => s.push('$'),
                    _ => w.parts.push(Part::Lit("$".to_string())),
                }
                return Ok(());
            }
        };
        w.parts.push(Part::Var { name, quoted });
        Ok(())
    }
}

/// Characters a variable name may hold (U-Boot allows more than the shell: `${fdt-file}`).
fn valid_var_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '=' | '{' | '}' | '$' | '"' | '\'' | '\\')
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<Token>,
    nesting: usize,
}

type PResult<T> = Result<T, (u32, u32, Syntax)>;

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => match w.keyword() {
            Some(k) => k.to_string(),
            None => "word".to_string(),
        },
        Tok::Sep(true) => "newline".to_string(),
        Tok::Sep(false) => ";".to_string(),
        Tok::And => "&&".to_string(),
        Tok::Or => "||".to_string(),
        Tok::Eof => "end of script".to_string(),
    }
}

const UNSUPPORTED_KEYWORDS: &[(&str, &str)] = &[("case", "'case'"), ("function", "'function'")];

impl<'a> Parser<'a> {
    fn peek(&mut self) -> PResult<&Token> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next_token()?);
        }
        // The branch above filled it.
        self.peeked.as_ref().ok_or((
            self.lex.line,
            self.lex.col,
            Syntax::Unexpected(String::new()),
        ))
    }

    fn next(&mut self) -> PResult<Token> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next_token(),
        }
    }

    /// Commands up to one of the keywords `ends` at command position (consumed and returned
    /// with its place) or the end of the text (`None`).
    #[allow(clippy::type_complexity)]
    fn list(
        &mut self,
        ends: &[&'static str],
    ) -> PResult<(Vec<AndOr>, Option<(&'static str, u32, u32)>)> {
        let mut items = Vec::new();
        loop {
            let t = self.peek()?;
            match &t.tok {
                Tok::Sep(_) => {
                    self.next()?;
                    continue;
                }
                Tok::Eof => return Ok((items, None)),
                Tok::Word(w) => {
                    if let Some(&end) = w.keyword().and_then(|k| ends.iter().find(|e| **e == k)) {
                        let t = self.next()?;
                        return Ok((items, Some((end, t.line, t.col))));
                    }
                }
                _ => {}
            }
            items.push(self.and_or()?);
            // After a command: a separator, the end, or (after `fi`) a closing keyword.
            let t = self.peek()?;
            let ok = match &t.tok {
                Tok::Sep(_) | Tok::Eof => true,
                Tok::Word(w) => w.keyword().is_some_and(|k| ends.contains(&k)),
                _ => false,
            };
            if !ok {
                return Err((t.line, t.col, Syntax::Unexpected(describe(&t.tok))));
            }
        }
    }

    fn and_or(&mut self) -> PResult<AndOr> {
        let first = self.command()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek()?.tok {
                Tok::And => Op::And,
                Tok::Or => Op::Or,
                _ => break,
            };
            self.next()?;
            while self.peek()?.tok == Tok::Sep(true) {
                self.next()?;
            }
            rest.push((op, self.command()?));
        }
        Ok(AndOr { first, rest })
    }

    fn command(&mut self) -> PResult<Command> {
        let t = self.next()?;
        let first = match t.tok {
            Tok::Word(w) => w,
            Tok::Eof => {
                return Err((
                    t.line,
                    t.col,
                    Syntax::UnexpectedEnd {
                        expected: "command",
                    },
                ));
            }
            other => return Err((t.line, t.col, Syntax::Unexpected(describe(&other)))),
        };
        match first.keyword() {
            Some("if") => return self.if_rest(t.line, t.col),
            Some("for") => return self.for_rest(t.line, t.col),
            Some(k @ ("while" | "until")) => return self.loop_rest(k == "until", t.line, t.col),
            Some(k @ ("then" | "elif" | "else" | "fi" | "do" | "done")) => {
                return Err((t.line, t.col, Syntax::Unexpected(k.to_string())));
            }
            Some(k) => {
                if let Some((_, what)) = UNSUPPORTED_KEYWORDS.iter().find(|(n, _)| *n == k) {
                    return Err((t.line, t.col, Syntax::Unsupported(what)));
                }
            }
            None => {}
        }
        let mut words = Vec::from([first]);
        loop {
            let t = self.peek()?;
            if !matches!(t.tok, Tok::Word(_)) {
                break;
            }
            if words.len() >= MAX_ARGS {
                return Err((t.line, t.col, Syntax::TooManyArgs { max: MAX_ARGS }));
            }
            if let Tok::Word(w) = self.next()?.tok {
                words.push(w);
            }
        }
        Ok(Command::Simple(words))
    }

    /// One more level of compound command at `line:col`.
    fn nest(&mut self, line: u32, col: u32) -> PResult<()> {
        self.nesting += 1;
        if self.nesting > MAX_IF_NESTING {
            return Err((
                line,
                col,
                Syntax::NestingTooDeep {
                    max: MAX_IF_NESTING,
                },
            ));
        }
        Ok(())
    }

    /// After `for`: `name [in words...]` up to a separator, then `do <list> done`.
    fn for_rest(&mut self, line: u32, col: u32) -> PResult<Command> {
        self.nest(line, col)?;
        let t = self.next()?;
        let var = match &t.tok {
            Tok::Word(w) => match w.keyword() {
                Some(k) if !k.is_empty() && k.chars().all(is_name_char) => k.to_string(),
                _ => return Err((t.line, t.col, Syntax::Unexpected(describe(&t.tok)))),
            },
            Tok::Eof => return Err(self.end_error("name")),
            other => return Err((t.line, t.col, Syntax::Unexpected(describe(other)))),
        };
        let mut words = Vec::new();
        if let Tok::Word(w) = &self.peek()?.tok {
            if w.keyword() != Some("in") {
                let t = self.next()?;
                return Err((t.line, t.col, Syntax::Unexpected(describe(&t.tok))));
            }
            self.next()?;
            loop {
                let t = self.next()?;
                match t.tok {
                    Tok::Word(w) if words.len() < MAX_ARGS => words.push(w),
                    Tok::Word(_) => {
                        return Err((t.line, t.col, Syntax::TooManyArgs { max: MAX_ARGS }))
                    }
                    Tok::Sep(_) => break,
                    Tok::Eof => return Err(self.end_error("do")),
                    other => return Err((t.line, t.col, Syntax::Unexpected(describe(&other)))),
                }
            }
        }
        let body = self.do_done()?;
        self.nesting -= 1;
        Ok(Command::For { var, words, body })
    }

    /// After `while`/`until`: `<list> do <list> done`.
    fn loop_rest(&mut self, until: bool, line: u32, col: u32) -> PResult<Command> {
        self.nest(line, col)?;
        let cond = match self.list(&["do"])? {
            (c, Some((_, l, cl))) if c.is_empty() => {
                return Err((l, cl, Syntax::Unexpected("do".to_string())));
            }
            (c, Some(_)) => c,
            (_, None) => return Err(self.end_error("do")),
        };
        let (body, end) = self.list(&["done"])?;
        if end.is_none() {
            return Err(self.end_error("done"));
        }
        self.nesting -= 1;
        Ok(Command::Loop { until, cond, body })
    }

    /// Separators, `do`, the body, `done`.
    fn do_done(&mut self) -> PResult<Vec<AndOr>> {
        while let Tok::Sep(_) = self.peek()?.tok {
            self.next()?;
        }
        let t = self.next()?;
        match &t.tok {
            Tok::Word(w) if w.keyword() == Some("do") => {}
            Tok::Eof => return Err(self.end_error("do")),
            other => return Err((t.line, t.col, Syntax::Unexpected(describe(other)))),
        }
        let (body, end) = self.list(&["done"])?;
        if end.is_none() {
            return Err(self.end_error("done"));
        }
        Ok(body)
    }

    fn if_rest(&mut self, line: u32, col: u32) -> PResult<Command> {
        self.nest(line, col)?;
        let mut branches = Vec::new();
        let mut otherwise = None;
        loop {
            let cond = match self.list(&["then"])? {
                (c, Some((_, l, cl))) if c.is_empty() => {
                    return Err((l, cl, Syntax::Unexpected("then".to_string())));
                }
                (c, Some(_)) => c,
                (_, None) => return Err(self.end_error("then")),
            };
            let (body, end) = self.list(&["elif", "else", "fi"])?;
            branches.push((cond, body));
            match end {
                Some(("elif", ..)) => continue,
                Some(("else", ..)) => {
                    let (body, end) = self.list(&["fi"])?;
                    if end.is_none() {
                        return Err(self.end_error("fi"));
                    }
                    otherwise = Some(body);
                    break;
                }
                Some(_) => break,
                None => return Err(self.end_error("fi")),
            }
        }
        self.nesting -= 1;
        Ok(Command::If {
            branches,
            otherwise,
        })
    }

    fn end_error(&self, expected: &'static str) -> (u32, u32, Syntax) {
        (
            self.lex.line,
            self.lex.col,
            Syntax::UnexpectedEnd { expected },
        )
    }
}

/// Parses `text`; errors are reported as `name:line:col: ...`.
pub fn parse(name: &str, text: &str) -> Result<Script, Error> {
    if text.len() > MAX_SCRIPT {
        return Err(Error::TooLong {
            name: name.to_string(),
            len: text.len(),
            max: MAX_SCRIPT,
        });
    }
    let mut p = Parser {
        lex: Lexer {
            src: text,
            pos: 0,
            line: 1,
            col: 1,
        },
        peeked: None,
        nesting: 0,
    };
    p.list(&[])
        .map(|(items, _)| Script { items })
        .map_err(|(line, col, what)| Error::Syntax {
            name: name.to_string(),
            line,
            col,
            what,
        })
}

// ---------------------------------------------------------------------------------------------
// Running

/// What a command gets to work with.
pub struct Ctx<'a> {
    pub env: &'a mut Env,
    pub console: &'a mut dyn Console,
    pub clock: &'a dyn Clock,
}

/// Why a firmware command did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    /// It failed and already said why on the console (`$?` becomes 1).
    Failed,
    /// It failed: the interpreter prints the message and a newline (`$?` becomes 1).
    Msg(String),
    /// Stop the whole script now, e.g. a `boot` command whose plan the caller will now execute.
    Stop,
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::Failed => write!(f, "command failed"),
            CmdError::Msg(m) => write!(f, "{m}"),
            CmdError::Stop => write!(f, "stop requested"),
        }
    }
}

/// What the built-ins need of the firmware: storage for `test -e`, RAM for `source`, the
/// defaults for `env default`. Each answers `None` by default: "this firmware has none".
pub trait Services {
    /// `test -e <iface> <dev[:part]> <path>`: whether the file exists; the error says why the
    /// device or file system could not be read.
    fn file_exists(
        &mut self,
        _iface: &str,
        _dev: &str,
        _path: &str,
    ) -> Option<Result<bool, String>> {
        None
    }
    /// `source`: `len` bytes of RAM at `addr`; the error says why they may not be read.
    fn read_memory(&mut self, _addr: u64, _len: usize) -> Option<Result<Vec<u8>, String>> {
        None
    }
    /// `env default`: the firmware's default environment.
    fn default_env(&self) -> Option<Env> {
        None
    }
    /// `source <addr>[:<name>]` of a FIT image: the text of its script image `name` (default:
    /// the default configuration's script), checked (hashes; signatures when a key requires
    /// them). `len` is `filesize` when set (a FIT with external data is longer than its tree).
    fn fit_script(
        &mut self,
        _addr: u64,
        _name: Option<&str>,
        _len: Option<u64>,
    ) -> Option<Result<String, String>> {
        None
    }
    /// Whether only a script inside a verified FIT may run (a trusted key is required). No
    /// default: every firmware must say, so a forgotten answer cannot weaken the policy.
    fn signed_scripts_only(&self) -> bool;
}

/// The firmware's commands (everything that is not a built-in), over its [`Services`].
pub trait Commands: Services {
    /// Runs `argv` (`argv[0]` is a name [`Commands::has`] accepts).
    fn call(&mut self, argv: &[String], ctx: &mut Ctx) -> Result<(), CmdError>;
    /// Whether `call` accepts the command `name`.
    fn has(&self, name: &str) -> bool;
}

/// No firmware commands: only the built-ins.
pub struct NoCommands;

impl Services for NoCommands {
    fn signed_scripts_only(&self) -> bool {
        false
    }
}

impl Commands for NoCommands {
    fn call(&mut self, _: &[String], _: &mut Ctx) -> Result<(), CmdError> {
        Err(CmdError::Failed)
    }
    fn has(&self, _: &str) -> bool {
        false
    }
}

/// How a script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The last command (or `exit 0`) succeeded.
    Success,
    /// The last command (or `exit n`, n != 0) failed.
    Failure,
    /// A firmware command returned [`CmdError::Stop`].
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Exit,
    Stop,
}

/// The work one top-level call has done so far, charged against [`MAX_STEPS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Commands executed (simple commands, built-in or not; `if` itself costs nothing).
    pub commands: u32,
    /// Bytes of text parsed: the script and every variable `run` ran, each time it ran.
    pub parsed_bytes: u64,
    /// Bytes of arguments after expansion, over all commands.
    pub expanded_bytes: u64,
    /// Bytes `printenv` wrote (the one built-in whose output is not its arguments).
    pub printed_bytes: u64,
}

impl Usage {
    /// Steps charged: one per command, one per [`BYTES_PER_STEP`] bytes parsed, expanded or
    /// printed.
    pub fn steps(&self) -> u64 {
        let bytes = self
            .parsed_bytes
            .saturating_add(self.expanded_bytes)
            .saturating_add(self.printed_bytes);
        u64::from(self.commands) + bytes / BYTES_PER_STEP
    }
}

/// The interpreter: keeps `$?` from one call to the next (the shell runs one line per call).
#[derive(Debug)]
pub struct Interp {
    status: bool,
    used: Usage,
    run_depth: usize,
    source_depth: usize,
    depth: usize,
    /// `for` variables (hush locals: looked up before the environment, never saved).
    locals: Vec<(String, String)>,
}

impl Default for Interp {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses and runs `text` with a fresh interpreter; errors are named `script:line:col`.
pub fn run_script(text: &str, ctx: &mut Ctx, cmds: &mut dyn Commands) -> Result<Outcome, Error> {
    Interp::new().run("script", text, ctx, cmds)
}

impl Interp {
    pub fn new() -> Self {
        Interp {
            status: true,
            used: Usage::default(),
            run_depth: 0,
            source_depth: 0,
            depth: 0,
            locals: Vec::new(),
        }
    }

    /// Whether the last command succeeded (`$?` is 0).
    pub fn last_status(&self) -> bool {
        self.status
    }

    /// What the last (or current) top-level call has charged to its budget.
    pub fn usage(&self) -> Usage {
        self.used
    }

    /// Parses `text` (named `name` in errors), then runs it. Nothing runs if it does not parse.
    /// The parse is charged to the call's budget.
    pub fn run(
        &mut self,
        name: &str,
        text: &str,
        ctx: &mut Ctx,
        cmds: &mut dyn Commands,
    ) -> Result<Outcome, Error> {
        self.reset();
        let script = self.parse_charged(name, text)?;
        self.exec_items(&script, ctx, cmds)
    }

    /// Runs a parsed script (its parse is not charged: it happened before).
    pub fn exec(
        &mut self,
        script: &Script,
        ctx: &mut Ctx,
        cmds: &mut dyn Commands,
    ) -> Result<Outcome, Error> {
        self.reset();
        self.exec_items(script, ctx, cmds)
    }

    /// A fresh budget and depth for a top-level call.
    fn reset(&mut self) {
        self.used = Usage::default();
        self.run_depth = 0;
        self.source_depth = 0;
        self.depth = 0;
    }

    /// Fails once the budget is used up.
    fn check_budget(&self) -> Result<(), Error> {
        if self.used.steps() > u64::from(MAX_STEPS) {
            return Err(Error::TooManySteps {
                max: MAX_STEPS,
                used: self.used,
            });
        }
        Ok(())
    }

    /// Charges `text` to the budget before parsing it, so a text the budget cannot pay for is
    /// never parsed.
    fn parse_charged(&mut self, name: &str, text: &str) -> Result<Script, Error> {
        self.used.parsed_bytes = self.used.parsed_bytes.saturating_add(text.len() as u64);
        self.check_budget()?;
        parse(name, text)
    }

    fn exec_items(
        &mut self,
        script: &Script,
        ctx: &mut Ctx,
        cmds: &mut dyn Commands,
    ) -> Result<Outcome, Error> {
        let flow = self.list(&script.items, ctx, cmds)?;
        Ok(match (flow, self.status) {
            (Flow::Stop, _) => Outcome::Stopped,
            (_, true) => Outcome::Success,
            (_, false) => Outcome::Failure,
        })
    }

    fn list(
        &mut self,
        items: &[AndOr],
        ctx: &mut Ctx,
        cmds: &mut dyn Commands,
    ) -> Result<Flow, Error> {
        for item in items {
            let mut flow = self.command(&item.first, ctx, cmds)?;
            for (op, cmd) in &item.rest {
                if flow != Flow::Normal {
                    break;
                }
                if (*op == Op::And) == self.status {
                    flow = self.command(cmd, ctx, cmds)?;
                }
            }
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn command(
        &mut self,
        cmd: &Command,
        ctx: &mut Ctx,
        cmds: &mut dyn Commands,
    ) -> Result<Flow, Error> {
        match cmd {
            Command::Simple(words) => {
                self.used.commands = self.used.commands.saturating_add(1);
                self.check_budget()?;
                let argv = self.expand(words, ctx.env)?;
                let expanded: usize = argv.iter().map(String::len).sum();
                self.used.expanded_bytes = self.used.expanded_bytes.saturating_add(expanded as u64);
                self.check_budget()?;
                if argv.is_empty() {
                    self.status = true;
                    return Ok(Flow::Normal);
                }
                self.simple(&argv, ctx, cmds)
            }
            Command::If {
                branches,
                otherwise,
            } => {
                self.enter()?;
                let mut flow = Flow::Normal;
                let mut taken = false;
                for (cond, body) in branches {
                    flow = self.list(cond, ctx, cmds)?;
                    if flow != Flow::Normal {
                        break;
                    }
                    if self.status {
                        taken = true;
                        flow = self.list(body, ctx, cmds)?;
                        break;
                    }
                }
                if !taken && flow == Flow::Normal {
                    match otherwise {
                        Some(body) => flow = self.list(body, ctx, cmds)?,
                        None => self.status = true,
                    }
                }
                self.depth -= 1;
                Ok(flow)
            }
            Command::For { var, words, body } => {
                let values = self.expand(words, ctx.env)?;
                let expanded: usize = values.iter().map(String::len).sum();
                self.used.expanded_bytes = self.used.expanded_bytes.saturating_add(expanded as u64);
                self.check_budget()?;
                self.enter()?;
                self.status = true;
                let mut flow = Flow::Normal;
                for v in values {
                    if !self.iteration(ctx)? {
                        break;
                    }
                    self.set_local(var, v)?;
                    flow = self.list(body, ctx, cmds)?;
                    if flow != Flow::Normal {
                        break;
                    }
                }
                self.depth -= 1;
                Ok(flow)
            }
            Command::Loop { until, cond, body } => {
                self.enter()?;
                let mut status = true;
                let mut flow = Flow::Normal;
                loop {
                    if !self.iteration(ctx)? {
                        status = false;
                        break;
                    }
                    flow = self.list(cond, ctx, cmds)?;
                    if flow != Flow::Normal || self.status == *until {
                        break;
                    }
                    flow = self.list(body, ctx, cmds)?;
                    status = self.status;
                    if flow != Flow::Normal {
                        break;
                    }
                }
                if flow == Flow::Normal {
                    self.status = status;
                }
                self.depth -= 1;
                Ok(flow)
            }
        }
    }

    /// The start of one loop iteration: charged a step, so a loop that runs no command still
    /// ends; false (the loop stops, `$?` 1) when Ctrl-C was typed.
    fn iteration(&mut self, ctx: &mut Ctx) -> Result<bool, Error> {
        self.used.commands = self.used.commands.saturating_add(1);
        self.check_budget()?;
        if ctx.console.interrupted() {
            ctx.console.write_str("<INTERRUPT>\n");
            self.status = false;
            return Ok(false);
        }
        Ok(true)
    }

    fn set_local(&mut self, name: &str, value: String) -> Result<(), Error> {
        if let Some(slot) = self.locals.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value;
            return Ok(());
        }
        if self.locals.len() >= MAX_LOCALS {
            return Err(Error::TooManyLocals { max: MAX_LOCALS });
        }
        self.locals.push((name.to_string(), value));
        Ok(())
    }

    /// A variable's value: a `for` variable first (as hush's locals), then the environment.
    fn lookup<'e>(&'e self, name: &str, env: &'e Env) -> Option<&'e str> {
        self.locals
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .or_else(|| env.get(name))
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::NestingTooDeep { max: MAX_DEPTH });
        }
        Ok(())
    }

    fn expand(&self, words: &[Word], env: &Env) -> Result<Vec<String>, Error> {
        let mut argv: Vec<String> = Vec::new();
        // Bytes in `argv` and finished fields, plus one separator each.
        let mut used = 0usize;
        for w in words {
            let mut cur = String::new();
            let mut active = w.quoted;
            let mut fields: Vec<String> = Vec::new();
            for part in &w.parts {
                let (value, quoted) = match part {
                    Part::Lit(s) => (s.as_str(), true),
                    Part::Var { name, quoted } if name == "?" => {
                        (if self.status { "0" } else { "1" }, *quoted)
                    }
                    Part::Var { name, quoted } => (self.lookup(name, env).unwrap_or(""), *quoted),
                };
                if used + cur.len() + value.len() > MAX_EXPANDED {
                    return Err(Error::ExpansionTooLong { max: MAX_EXPANDED });
                }
                if quoted {
                    cur.push_str(value);
                    active = true;
                    continue;
                }
                for c in value.chars() {
                    if c == ' ' || c == '\t' || c == '\n' {
                        if active {
                            used += cur.len() + 1;
                            fields.push(core::mem::take(&mut cur));
                            active = false;
                        }
                    } else {
                        cur.push(c);
                        active = true;
                    }
                }
            }
            if active {
                used += cur.len() + 1;
                fields.push(cur);
            }
            if used > MAX_EXPANDED {
                return Err(Error::ExpansionTooLong { max: MAX_EXPANDED });
            }
            if argv.len() + fields.len() > MAX_ARGS {
                return Err(Error::TooManyArgs { max: MAX_ARGS });
            }
            argv.extend(fields);
        }
        Ok(argv)
    }

    fn simple(
        &mut self,
        argv: &[String],
        ctx: &mut Ctx,
        cmds: &mut dyn Commands,
    ) -> Result<Flow, Error> {
        let args = &argv[1..];
        let ok = match argv[0].as_str() {
            "true" => true,
            "false" => false,
            "echo" => {
                let (newline, words) = match args.first() {
                    Some(a) if a == "-n" => (false, &args[1..]),
                    _ => (true, args),
                };
                for (i, a) in words.iter().enumerate() {
                    if i > 0 {
                        ctx.console.write_str(" ");
                    }
                    ctx.console.write_str(a);
                }
                if newline {
                    ctx.console.write_str("\n");
                }
                true
            }
            "setenv" => setenv(args, ctx),
            "printenv" => self.printenv(args, ctx)?,
            "env" => return self.env(args, ctx, cmds),
            "sleep" => sleep(args, ctx),
            "test" => {
                let mut exists = |iface: &str, dev: &str, path: &str| {
                    cmds.file_exists(iface, dev, path)
                        .unwrap_or_else(|| Err("-e: no storage to look in".to_string()))
                };
                match cond::eval(args, &mut exists) {
                    Ok(v) => v,
                    Err(msg) => {
                        ctx.console.write_str(&format!("test: {msg}\n"));
                        false
                    }
                }
            }
            name if name == "setexpr" || name.starts_with("setexpr.") => {
                let suffix = name.split_once('.').map(|(_, s)| s);
                let env = &*ctx.env;
                let current = |n: &str| self.lookup(n, env).map(str::to_string);
                match expr::setexpr(suffix, args, &current, MAX_EXPANDED) {
                    Ok(a) => set_var(&a.name, &a.value, ctx),
                    Err(msg) => say(ctx, &msg),
                }
            }
            name if name == "itest" || name.starts_with("itest.") => {
                let suffix = name.split_once('.').map(|(_, s)| s);
                let env = &*ctx.env;
                let var = |n: &str| self.lookup(n, env).map(str::to_string);
                match expr::itest(suffix, args, &var) {
                    Ok(v) => v,
                    Err(msg) => say(ctx, &msg),
                }
            }
            "source" => return self.source(args, ctx, cmds),
            "exit" => {
                self.status = args.first().is_none_or(|a| a.trim() == "0");
                return Ok(Flow::Exit);
            }
            "run" => return self.run_vars(args, ctx, cmds),
            name if cmds.has(name) => match cmds.call(argv, ctx) {
                Ok(()) => true,
                Err(CmdError::Stop) => return Ok(Flow::Stop),
                Err(CmdError::Failed) => false,
                Err(CmdError::Msg(m)) => {
                    ctx.console.write_str(&m);
                    ctx.console.write_str("\n");
                    false
                }
            },
            name => {
                ctx.console
                    .write_str(&format!("Unknown command '{name}' - try 'help'\n"));
                false
            }
        };
        self.status = ok;
        Ok(Flow::Normal)
    }

    fn run_vars(
        &mut self,
        vars: &[String],
        ctx: &mut Ctx,
        cmds: &mut dyn Commands,
    ) -> Result<Flow, Error> {
        if vars.is_empty() {
            ctx.console.write_str("Usage: run var [...]\n");
            self.status = false;
            return Ok(Flow::Normal);
        }
        for var in vars {
            let Some(text) = ctx.env.get(var).map(str::to_string) else {
                ctx.console
                    .write_str(&format!("## Error: \"{var}\" not defined\n"));
                self.status = false;
                return Ok(Flow::Normal);
            };
            let script = self.parse_charged(var, &text)?;
            self.run_depth += 1;
            if self.run_depth > MAX_RUN_DEPTH {
                return Err(Error::RunTooDeep { max: MAX_RUN_DEPTH });
            }
            self.enter()?;
            let flow = self.list(&script.items, ctx, cmds)?;
            self.depth -= 1;
            self.run_depth -= 1;
            if flow != Flow::Normal {
                return Ok(flow);
            }
            if !self.status {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    /// `printenv [name...]`, charged for what it prints.
    fn printenv(&mut self, args: &[String], ctx: &mut Ctx) -> Result<bool, Error> {
        let (ok, printed) = printenv(args, ctx);
        self.used.printed_bytes = self.used.printed_bytes.saturating_add(printed as u64);
        self.check_budget()?;
        Ok(ok)
    }

    /// `env exists|set|print|delete|default`: `set` and `print` are `setenv` and `printenv`.
    fn env(
        &mut self,
        args: &[String],
        ctx: &mut Ctx,
        cmds: &mut dyn Commands,
    ) -> Result<Flow, Error> {
        let rest = args.get(1..).unwrap_or_default();
        let ok = match args.first().map(String::as_str) {
            Some("exists") => match rest {
                [name] => ctx.env.get(name).is_some(),
                _ => say(ctx, "Usage: env exists name"),
            },
            Some("set") => setenv(rest, ctx),
            Some("print") => self.printenv(rest, ctx)?,
            Some("delete") => {
                let names: Vec<&String> = rest.iter().filter(|a| *a != "-f").collect();
                for n in &names {
                    ctx.env.unset(n);
                }
                !names.is_empty() || say(ctx, "Usage: env delete [-f] name...")
            }
            Some("default") => env_default(rest, ctx, cmds),
            _ => say(
                ctx,
                "Usage: env exists name | set name [value...] | print [name...] | \
                 delete [-f] name... | default [-f] -a | default [-f] name...",
            ),
        };
        self.status = ok;
        Ok(Flow::Normal)
    }

    /// `source [addr]`: runs the `mkimage -T script` image at `addr` (default `loadaddr`, else
    /// `scriptaddr`) here, with this call's budget and variables; a bad image or text fails
    /// the command (the caller goes on), as U-Boot's.
    fn source(
        &mut self,
        args: &[String],
        ctx: &mut Ctx,
        cmds: &mut dyn Commands,
    ) -> Result<Flow, Error> {
        self.status = false;
        let from_env = || {
            ctx.env
                .get("loadaddr")
                .or_else(|| ctx.env.get("scriptaddr"))
        };
        let Some(arg) = args
            .first()
            .map(String::as_str)
            .or_else(from_env)
            .map(str::to_string)
        else {
            say(
                ctx,
                "source: no address given, and neither loadaddr nor scriptaddr is set",
            );
            return Ok(Flow::Normal);
        };
        // U-Boot's `addr:name`: script image `name` of the FIT at addr.
        let (a, sub) = match arg.split_once(':') {
            Some((a, n)) => (a, Some(n).filter(|n| !n.is_empty())),
            None => (arg.as_str(), None),
        };
        let addr = match expr::hex(a) {
            Ok(a) => a,
            Err(m) => {
                say(ctx, &format!("source: {m}"));
                return Ok(Flow::Normal);
            }
        };
        ctx.console
            .write_str(&format!("## Executing script at {addr:08x}\n"));
        let is_fit =
            matches!(cmds.read_memory(addr, 4), Some(Ok(m)) if m == [0xd0, 0x0d, 0xfe, 0xed]);
        let filesize = ctx.env.get("filesize").and_then(|f| expr::hex(f).ok());
        let read = if is_fit {
            cmds.fit_script(addr, sub, filesize)
                .unwrap_or_else(|| Err("this firmware cannot read FIT images".to_string()))
        } else if cmds.signed_scripts_only() {
            Err(
                "refused by verified boot: only a script inside a signed FIT image runs \
                 (source <addr>:<script>)"
                    .to_string(),
            )
        } else if sub.is_some() {
            Err("not a FIT image (addr:name names a script inside one)".to_string())
        } else {
            read_script_image(addr, cmds)
        };
        let text = match read {
            Ok(t) => t,
            Err(m) => {
                say(ctx, &format!("source: {addr:#x}: {m}"));
                return Ok(Flow::Normal);
            }
        };
        let script = match self.parse_charged(&format!("script@{addr:#x}"), &text) {
            Ok(s) => s,
            Err(e @ Error::TooManySteps { .. }) => return Err(e),
            Err(e) => {
                say(ctx, &format!("source: {e}"));
                return Ok(Flow::Normal);
            }
        };
        self.source_depth += 1;
        if self.source_depth > MAX_SOURCE_DEPTH {
            return Err(Error::SourceTooDeep {
                max: MAX_SOURCE_DEPTH,
            });
        }
        self.enter()?;
        let flow = self.list(&script.items, ctx, cmds)?;
        self.depth -= 1;
        self.source_depth -= 1;
        // `exit` ends the sourced script, not its caller.
        Ok(match flow {
            Flow::Exit => Flow::Normal,
            f => f,
        })
    }
}

/// The script text of the legacy image at `addr`: its header first, for the size, then the
/// whole image, which must fit [`MAX_SCRIPT`] and its size table.
fn read_script_image(addr: u64, cmds: &mut dyn Commands) -> Result<String, String> {
    let mut read = |len: usize| {
        cmds.read_memory(addr, len)
            .unwrap_or_else(|| Err("this firmware cannot read RAM for scripts".to_string()))
    };
    let header = read(IH_HEADER_LEN)?;
    let size = be32(&header, 12).ok_or("short read")? as usize;
    let max = MAX_SCRIPT + 4 * (MAX_SIZE_TABLE + 1);
    if size > max {
        return Err(format!(
            "script image of {size} bytes, expected at most {max}"
        ));
    }
    let image = read(IH_HEADER_LEN + size)?;
    parse_legacy_script_image(&image)
        .map(str::to_string)
        .map_err(|e| e.to_string())
}

/// `env default -a` (everything) or `env default name...` (those variables), from the
/// firmware's defaults; `-f` is accepted and means nothing (no variable is protected).
fn env_default(args: &[String], ctx: &mut Ctx, cmds: &mut dyn Commands) -> bool {
    let Some(defaults) = cmds.default_env() else {
        return say(ctx, "## Error: this firmware has no default environment");
    };
    let names: Vec<&String> = args.iter().filter(|a| *a != "-f").collect();
    if names.is_empty() || names.iter().any(|n| *n == "-a") {
        *ctx.env = defaults;
        ctx.console
            .write_str("## Resetting to default environment\n");
        return true;
    }
    for n in names {
        match defaults.get(n) {
            Some(v) => ctx.env.set(n, v),
            None => {
                ctx.env.unset(n);
            }
        }
    }
    true
}

fn valid_env_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 128 && n.chars().all(|c| c.is_ascii_graphic() && c != '=')
}

fn setenv(args: &[String], ctx: &mut Ctx) -> bool {
    let Some(name) = args.first() else {
        ctx.console
            .write_str("Usage: setenv name [value ...] (no value deletes)\n");
        return false;
    };
    if !valid_env_name(name) {
        ctx.console
            .write_str(&format!("## Error: illegal variable name \"{name}\"\n"));
        return false;
    }
    if args.len() == 1 {
        ctx.env.unset(name);
        return true;
    }
    set_var(name, &args[1..].join(" "), ctx)
}

/// Sets one variable within [`MAX_ENV_BYTES`]: what `setenv`, `env set` and `setexpr` store
/// through.
fn set_var(name: &str, value: &str, ctx: &mut Ctx) -> bool {
    if !valid_env_name(name) {
        ctx.console
            .write_str(&format!("## Error: illegal variable name \"{name}\"\n"));
        return false;
    }
    let old = ctx.env.get(name).map_or(0, |v| name.len() + v.len() + 2);
    if ctx.env.bytes() - old + name.len() + value.len() + 2 > MAX_ENV_BYTES {
        ctx.console.write_str(&format!(
            "## Error: environment full (at most {MAX_ENV_BYTES} bytes)\n"
        ));
        return false;
    }
    ctx.env.set(name, value);
    true
}

/// Prints `msg` and a newline; false, for a failed built-in.
fn say(ctx: &mut Ctx, msg: &str) -> bool {
    ctx.console.write_str(msg);
    ctx.console.write_str("\n");
    false
}

/// Whether every variable asked for exists, and the bytes printed.
fn printenv(args: &[String], ctx: &mut Ctx) -> (bool, usize) {
    let mut printed = 0;
    let mut print = |console: &mut dyn Console, line: &str| {
        console.write_str(line);
        printed += line.len();
    };
    if args.is_empty() {
        for (n, v) in ctx.env.iter_sorted() {
            print(ctx.console, &format!("{n}={v}\n"));
        }
        return (true, printed);
    }
    let mut ok = true;
    for name in args {
        match ctx.env.get(name) {
            Some(v) => print(ctx.console, &format!("{name}={v}\n")),
            None => {
                print(ctx.console, &format!("## Error: \"{name}\" not defined\n"));
                ok = false;
            }
        }
    }
    (ok, printed)
}

/// `N` or `N.frac` seconds as microseconds, at most [`MAX_SLEEP_S`].
fn parse_seconds(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() > 10
    {
        return None;
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut us = 0u64;
    let mut scale = 100_000u64;
    for b in frac.bytes().take(6) {
        us += u64::from(b - b'0') * scale;
        scale /= 10;
    }
    if secs > MAX_SLEEP_S || (secs == MAX_SLEEP_S && us > 0) {
        return None;
    }
    Some(secs * 1_000_000 + us)
}

fn sleep(args: &[String], ctx: &mut Ctx) -> bool {
    let Some(arg) = args.first() else {
        ctx.console
            .write_str("Usage: sleep N (seconds, N.frac allowed)\n");
        return false;
    };
    let Some(us) = parse_seconds(arg) else {
        ctx.console.write_str(&format!(
            "sleep: '{arg}': not a number of seconds up to {MAX_SLEEP_S}\n"
        ));
        return false;
    };
    let start = ctx.clock.now_us();
    // Like U-Boot: keys typed meanwhile are dropped, Ctrl-C interrupts (and fails).
    while ctx.clock.now_us().wrapping_sub(start) < us {
        if ctx.console.read_byte() == Some(CTRL_C) {
            ctx.console.write_str("<INTERRUPT>\n");
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// boot.scr

/// Legacy uImage magic (`IH_MAGIC`).
pub const IH_MAGIC: u32 = 0x2705_1956;
/// Legacy uImage type of a script (`IH_TYPE_SCRIPT`).
pub const IH_TYPE_SCRIPT: u8 = 6;
/// Legacy uImage header length.
pub const IH_HEADER_LEN: usize = 64;
const IH_COMP_NONE: u8 = 0;
/// Most entries read from a multi-file size table.
const MAX_SIZE_TABLE: usize = 64;

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Unwraps U-Boot's `boot.scr` (`mkimage -A arm64 -T script -C none -d boot.cmd boot.scr`):
/// checks the 64-byte big-endian legacy header (magic, header CRC32, size, data CRC32, type
/// script, no compression), then the multi-file size table (u32 BE sizes ending with 0), and
/// returns the first file: the script text (trailing NULs dropped).
pub fn parse_legacy_script_image(bytes: &[u8]) -> Result<&str, Error> {
    let truncated = |needed| Error::ImageTruncated {
        needed,
        found: bytes.len(),
    };
    let header = bytes.get(..IH_HEADER_LEN).ok_or(truncated(IH_HEADER_LEN))?;
    let field = |off| be32(header, off).unwrap_or(0);
    let magic = field(0);
    if magic != IH_MAGIC {
        return Err(Error::ImageBadMagic { found: magic });
    }
    let mut h = [0u8; IH_HEADER_LEN];
    h.copy_from_slice(header);
    h[4..8].fill(0);
    let (hcrc, found) = (field(4), crc32fast::hash(&h));
    if hcrc != found {
        return Err(Error::ImageCrc {
            part: "header",
            expected: hcrc,
            found,
        });
    }
    let size = field(12) as usize;
    let needed = IH_HEADER_LEN.saturating_add(size);
    let data = bytes.get(IH_HEADER_LEN..needed).ok_or(truncated(needed))?;
    let (dcrc, found) = (field(24), crc32fast::hash(data));
    if dcrc != found {
        return Err(Error::ImageCrc {
            part: "data",
            expected: dcrc,
            found,
        });
    }
    let (ty, comp) = (header[30], header[31]);
    if ty != IH_TYPE_SCRIPT {
        return Err(Error::ImageNotScript { found: ty });
    }
    if comp != IH_COMP_NONE {
        return Err(Error::ImageCompressed { comp });
    }
    // Size table: first size, more sizes, 0.
    let first = be32(data, 0).ok_or(Error::ImageBadSizeTable { offset: 0 })? as usize;
    let mut off = 4;
    loop {
        let s = be32(data, off).ok_or(Error::ImageBadSizeTable { offset: off })?;
        off += 4;
        if s == 0 {
            break;
        }
        if off / 4 > MAX_SIZE_TABLE {
            return Err(Error::ImageBadSizeTable { offset: off });
        }
    }
    if first == 0 {
        return Err(Error::ImageBadSizeTable { offset: 0 });
    }
    let text = data
        .get(off..off.saturating_add(first))
        .ok_or(Error::ImageBadSizeTable { offset: 0 })?;
    let text = core::str::from_utf8(text).map_err(|e| Error::ImageNotUtf8 {
        offset: e.valid_up_to(),
    })?;
    Ok(text.trim_end_matches('\0'))
}

/// Builds a legacy script image around `text` (what `mkimage -T script` writes); for tests
/// and tools.
pub fn make_legacy_script_image(text: &str, name: &str) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(&(text.len() as u32).to_be_bytes());
    data.extend_from_slice(&0u32.to_be_bytes());
    data.extend_from_slice(text.as_bytes());
    let mut h = [0u8; IH_HEADER_LEN];
    h[0..4].copy_from_slice(&IH_MAGIC.to_be_bytes());
    h[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(&data).to_be_bytes());
    h[28] = 5; // IH_OS_LINUX
    h[29] = 22; // IH_ARCH_ARM64
    h[30] = IH_TYPE_SCRIPT;
    h[31] = IH_COMP_NONE;
    let n = name.len().min(32);
    h[32..32 + n].copy_from_slice(&name.as_bytes()[..n]);
    let hcrc = crc32fast::hash(&h);
    h[4..8].copy_from_slice(&hcrc.to_be_bytes());
    let mut out = Vec::from(h);
    out.extend_from_slice(&data);
    out
}
