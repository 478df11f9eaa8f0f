//! Input rules of the schema's mutations, each refused with `BAD_USER_INPUT` and a
//! message naming the field.

use graphql_exec::exec::FieldError;

use super::values::BAD_USER_INPUT;

fn bad(message: String) -> FieldError {
    FieldError::new(BAD_USER_INPUT, message)
}

/// A text of `min` to `max` characters (after trimming when `trim`); returns it trimmed.
pub fn text<'a>(
    field: &str,
    value: &'a str,
    min: usize,
    max: usize,
) -> Result<&'a str, FieldError> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min || n > max {
        return Err(bad(if min > 0 {
            format!("`{field}` must be {min} to {max} characters, not {n}")
        } else {
            format!("`{field}` must be at most {max} characters, not {n}")
        }));
    }
    Ok(v)
}

/// A display name: 1 to 25 characters.
pub fn display_name(v: &str) -> Result<&str, FieldError> {
    text("displayName", v, 1, 25)
}

/// A bio: at most 300 characters.
pub fn bio(v: &str) -> Result<&str, FieldError> {
    text("bio", v, 0, 300)
}

/// A channel or stream title: 1 to 140 characters.
pub fn title(v: &str) -> Result<&str, FieldError> {
    text("title", v, 1, 140)
}

/// A chat message: 1 to 500 characters after trimming.
pub fn chat_body(v: &str) -> Result<&str, FieldError> {
    text("body", v, 1, 500)
}

/// At most 10 tags, each 1 to 25 ASCII letters or digits.
pub fn tags(tags: &[&str]) -> Result<(), FieldError> {
    if tags.len() > 10 {
        return Err(bad(format!("at most 10 tags, not {}", tags.len())));
    }
    for t in tags {
        if t.is_empty() || t.len() > 25 || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad(format!(
                "tag `{t}` must be 1 to 25 ASCII letters or digits"
            )));
        }
    }
    Ok(())
}

/// Every ISO 639-1 code, two letters each.
const ISO_639_1: &str = "aaabaeafakamanarasavayazbabebgbhbibmbnbobrbscacechcocrcscucvcydadedvdzeeeleneoeseteufafffifjfofrfygagdglgngugvhahehihohrhthuhyhziaidieigiiikioisitiujajvkakgkikjkkklkmknkokrkskukvkwkylalblglilnloltlulvmgmhmimkmlmnmrmsmtmynanbndnengnlnnnonrnvnyocojomorospapiplpsptqurmrnrorurwsascsdsesgsiskslsmsnsosqsrssstsusvswtatetgthtitktltntotrtstttwtyugukuruzvevivowawoxhyiyozazhzu";

/// An ISO 639-1 language code.
pub fn language(v: &str) -> Result<&str, FieldError> {
    let known = v.len() == 2 && ISO_639_1.as_bytes().chunks(2).any(|c| c == v.as_bytes());
    if known {
        Ok(v)
    } else {
        Err(bad(format!("`{v}` is not an ISO 639-1 language code")))
    }
}

/// A ban's duration: 1 second to 1 year.
pub fn ban_seconds(v: i64) -> Result<i64, FieldError> {
    if (1..=366 * 86_400).contains(&v) {
        Ok(v)
    } else {
        Err(bad(format!(
            "`durationSeconds` must be 1 to 31622400 (a year), not {v}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_counted_in_characters_after_trimming() {
        assert_eq!(display_name("  Ann  "), Ok("Ann"));
        assert!(display_name("   ").is_err());
        assert!(display_name(&"é".repeat(25)).is_ok());
        assert!(display_name(&"é".repeat(26)).is_err());
        assert!(bio("").is_ok());
        assert!(bio(&"x".repeat(301)).is_err());
        assert!(title(&"x".repeat(140)).is_ok());
        assert!(chat_body(&"x".repeat(501)).is_err());
        let e = chat_body(" ").unwrap_err();
        assert_eq!(e.code, Some(BAD_USER_INPUT));
        assert!(e.message.contains("body"));
    }

    #[test]
    fn tags_and_languages_follow_their_rules() {
        assert!(tags(&["Rust", "gamedev2"]).is_ok());
        assert!(tags(&["two words"]).is_err());
        assert!(tags(&[""]).is_err());
        assert!(tags(&["x"; 11]).is_err());
        assert!(language("en").is_ok());
        assert!(language("zu").is_ok());
        assert!(language("xx").is_err());
        assert!(language("eng").is_err());
        assert!(ISO_639_1.len().is_multiple_of(2));
    }

    #[test]
    fn ban_durations_are_bounded() {
        assert!(ban_seconds(60).is_ok());
        assert!(ban_seconds(0).is_err());
        assert!(ban_seconds(400 * 86_400).is_err());
    }
}
