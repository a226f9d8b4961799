//! Label selectors as `kubectl -l` writes them (`a=b,c!=d,e in (x,y),f notin (z),g,!h,n>3`), parsed and matched
//! locally: an archive is read without an API server to ask. The grammar and checks follow the API machinery's
//! own parser (`k8s.io/apimachinery/pkg/labels`): comma-separated requirements, all of which must hold; keys are
//! qualified names (`prefix/name`), values label values. kube-rs matches selectors but does not parse the text.

use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`: the label exists with that value.
    Equals(String, String),
    /// `key!=value`: the label is absent or has another value.
    NotEquals(String, String),
    /// `key in (a,b)`: the label exists with one of the values.
    In(String, BTreeSet<String>),
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn(String, BTreeSet<String>),
    /// `key`: the label exists.
    Exists(String),
    /// `!key`: the label does not exist.
    DoesNotExist(String),
    /// `key>n`: the label is an integer greater than n.
    GreaterThan(String, i64),
    /// `key<n`: the label is an integer less than n.
    LessThan(String, i64),
}

/// A parsed selector: every requirement must hold. Empty selects everything, as in kubectl.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    requirements: Vec<Requirement>,
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl LabelSelector {
    /// Parses `text`; the error says which requirement is wrong and how.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let mut requirements = Vec::new();
        if !parser.tokens.is_empty() {
            loop {
                requirements.push(parser.requirement()?);
                match parser.next() {
                    None => break,
                    Some(Token::Comma) => {}
                    Some(other) => return Err(format!("expected `,` between requirements, found {other}")),
                }
            }
        }
        Ok(LabelSelector {
            text: text.trim().to_owned(),
            requirements,
        })
    }

    /// The requirements, in the order written.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `object`'s `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|requirement| match requirement {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, values) => label(k).is_some_and(|l| values.contains(l)),
            Requirement::NotIn(k, values) => !label(k).is_some_and(|l| values.contains(l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
            Requirement::GreaterThan(k, n) => label(k).and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => label(k).and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l < *n),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Comma,
    Open,
    Close,
    Not,
    Equals,
    NotEquals,
    Greater,
    Less,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "`{w}`"),
            Token::Comma => f.write_str("`,`"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
            Token::Not => f.write_str("`!`"),
            Token::Equals => f.write_str("`=`"),
            Token::NotEquals => f.write_str("`!=`"),
            Token::Greater => f.write_str("`>`"),
            Token::Less => f.write_str("`<`"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            '<' => Token::Less,
            '>' => Token::Greater,
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                Token::NotEquals
            }
            '!' => Token::Not,
            '=' => {
                if chars.peek() == Some(&'=') {
                    chars.next();
                }
                Token::Equals
            }
            c => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || ",()<>!=".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                Token::Word(word)
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Not) {
            self.next();
            let key = self.key()?;
            return match self.peek() {
                None | Some(Token::Comma) => Ok(Requirement::DoesNotExist(key)),
                Some(other) => Err(format!("`!{key}` takes no operator, found {other}")),
            };
        }
        let key = self.key()?;
        match self.peek().cloned() {
            None | Some(Token::Comma) => Ok(Requirement::Exists(key)),
            Some(Token::Equals) => {
                self.next();
                Ok(Requirement::Equals(key, self.value()?))
            }
            Some(Token::NotEquals) => {
                self.next();
                Ok(Requirement::NotEquals(key, self.value()?))
            }
            Some(op @ (Token::Greater | Token::Less)) => {
                self.next();
                let value = match self.next() {
                    Some(Token::Word(value)) => value,
                    _ => String::new(),
                };
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("`{key}{op}{value}`: `>` and `<` compare integers", op = op_text(&op)))?;
                Ok(if op == Token::Greater {
                    Requirement::GreaterThan(key, n)
                } else {
                    Requirement::LessThan(key, n)
                })
            }
            Some(Token::Word(word)) if word == "in" || word == "notin" => {
                self.next();
                let values = self.set(&key, &word)?;
                Ok(if word == "in" {
                    Requirement::In(key, values)
                } else {
                    Requirement::NotIn(key, values)
                })
            }
            Some(other) => Err(format!(
                "after `{key}` expected one of `=`, `==`, `!=`, `in`, `notin`, `>`, `<` or `,`, found {other}"
            )),
        }
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(key)) => {
                check_key(&key)?;
                Ok(key)
            }
            Some(other) => Err(format!("expected a label key, found {other}")),
            None => Err("expected a label key at the end".into()),
        }
    }

    /// A value after `=`/`!=`: empty when the requirement ends right there (`a=` matches an empty label).
    fn value(&mut self) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Token::Word(value)) => {
                self.next();
                check_value(&value)?;
                Ok(value)
            }
            None | Some(Token::Comma) => Ok(String::new()),
            Some(other) => Err(format!("expected a label value, found {other}")),
        }
    }

    fn set(&mut self, key: &str, op: &str) -> Result<BTreeSet<String>, String> {
        if self.next() != Some(Token::Open) {
            return Err(format!(
                "`{key} {op}` needs a list of values in parentheses, e.g. `{key} {op} (a,b)`"
            ));
        }
        let mut values = BTreeSet::new();
        loop {
            match self.next() {
                Some(Token::Word(value)) => {
                    check_value(&value)?;
                    values.insert(value);
                    match self.next() {
                        Some(Token::Comma) => {}
                        Some(Token::Close) => break,
                        _ => {
                            return Err(format!(
                                "`{key} {op} (…)`: values are separated by `,` and closed by `)`"
                            ));
                        }
                    }
                }
                Some(Token::Close) if values.is_empty() => {
                    return Err(format!("`{key} {op} ()`: the list of values cannot be empty"));
                }
                _ => {
                    return Err(format!(
                        "`{key} {op} (…)`: values are separated by `,` and closed by `)`"
                    ));
                }
            }
        }
        Ok(values)
    }
}

fn op_text(op: &Token) -> &'static str {
    if *op == Token::Greater { ">" } else { "<" }
}

/// A label name or value: at most 63 characters, alphanumerics at both ends, `-`, `_`, `.` inside.
fn is_label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

/// A DNS label (RFC 1123), which is also what a namespace name must be: at most 63 lower-case letters, digits and
/// `-`, alphanumeric at both ends.
pub(crate) fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// A DNS subdomain (RFC 1123): at most 253 characters of dot-separated DNS labels.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

fn check_key(key: &str) -> Result<(), String> {
    let valid = match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(key),
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{key}` is not a label key: a name of at most 63 letters, digits, `-`, `_`, `.` (starting and \
             ending with a letter or digit), optionally after a DNS prefix and `/`"
        ))
    }
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a label value: at most 63 letters, digits, `-`, `_`, `.`, starting and ending with a \
             letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn parses_every_operator() {
        let selector =
            LabelSelector::parse("a=b, c==d,e!=f,g in (x, y),h notin (z),i,!j,k>3,l<-2,example.com/team=a").unwrap();
        assert_eq!(
            selector.requirements(),
            [
                Requirement::Equals("a".into(), "b".into()),
                Requirement::Equals("c".into(), "d".into()),
                Requirement::NotEquals("e".into(), "f".into()),
                Requirement::In("g".into(), set(&["x", "y"])),
                Requirement::NotIn("h".into(), set(&["z"])),
                Requirement::Exists("i".into()),
                Requirement::DoesNotExist("j".into()),
                Requirement::GreaterThan("k".into(), 3),
                Requirement::LessThan("l".into(), -2),
                Requirement::Equals("example.com/team".into(), "a".into()),
            ]
        );
        assert_eq!(
            LabelSelector::parse("a=").unwrap().requirements(),
            [Requirement::Equals("a".into(), String::new())]
        );
        assert!(LabelSelector::parse("  ").unwrap().requirements().is_empty());
    }

    #[test]
    fn refuses_malformed_selectors_with_a_reason() {
        for (text, says) in [
            ("a in x", "in parentheses"),
            ("a in ()", "cannot be empty"),
            ("a in (x", "closed by `)`"),
            ("a=b c=d", "expected `,`"),
            ("a b", "found `b`"),
            ("=b", "expected a label key"),
            ("a,", "at the end"),
            ("!a=b", "takes no operator"),
            ("a>b", "compare integers"),
            ("-a=b", "not a label key"),
            ("Example.com/a=b", "not a label key"),
            ("a=-b", "not a label value"),
            (&format!("a={}", "v".repeat(64)), "not a label value"),
        ] {
            let error = LabelSelector::parse(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn matches_like_the_api_server() {
        let object = labelled(json!({"team": "a", "tier": "web", "n": "5"}));
        let cases = [
            ("team=a", true),
            ("team=b", false),
            ("team!=b", true),
            ("missing!=b", true),
            ("team in (a,b)", true),
            ("team notin (a,b)", false),
            ("missing notin (a)", true),
            ("missing in (a)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("n>4", true),
            ("n<5", false),
            ("team>1", false),
            ("team=a,tier=web", true),
            ("team=a,tier=db", false),
            ("", true),
        ];
        for (text, expected) in cases {
            assert_eq!(LabelSelector::parse(text).unwrap().matches(&object), expected, "{text}");
        }
        let unlabelled = json!({"metadata": {"name": "x"}});
        assert!(LabelSelector::parse("!team").unwrap().matches(&unlabelled));
        assert!(!LabelSelector::parse("team").unwrap().matches(&unlabelled));
    }
}
