//! The notices a redirect can ask a page to show: fixed texts by code, so nothing from the URL
//! is ever echoed.

use maud::{Markup, html};

/// Messages a redirect can ask a page to show (fixed texts: nothing from the URL is echoed);
/// `true` for the ones that report a problem.
pub fn notice_text(code: &str) -> Option<(&'static str, bool)> {
    Some(match code {
        "signed-in" => ("Welcome back: you are signed in.", false),
        "signed-up" => ("Your account is ready and you are signed in.", false),
        "signed-out" => ("You are signed out.", false),
        "rated" => ("Thanks: your rating is saved.", false),
        "unrated" => ("Your rating is removed.", false),
        "bad-credentials" => ("Email or password is incorrect.", true),
        "invalid-signin" => (
            "Enter your email address and your password to sign in.",
            true,
        ),
        "email-taken" => (
            "An account with this email already exists. Sign in instead?",
            true,
        ),
        "invalid-signup" => (
            "Check the form: a valid email, a name of 1 to 64 characters and a password of 8 to 128 characters.",
            true,
        ),
        "invalid-email" => (
            "Enter an email address like name@example.com to sign up.",
            true,
        ),
        "invalid-name" => (
            "Enter a name of 1 to 64 characters (not only spaces) to sign up.",
            true,
        ),
        "short-password" => ("Choose a password of 8 to 128 characters to sign up.", true),
        "invalid-rating" => ("Choose 1 to 5 stars.", true),
        "too-many-attempts" => (
            "Too many sign-in attempts from here: wait a minute and try again.",
            true,
        ),
        "sign-in-to-rate" => ("Sign in to rate books.", true),
        "not-rated" => ("You had not rated this book.", true),
        "unavailable" => (
            "That did not work: a service is unavailable. Try again shortly.",
            true,
        ),
        _ => return None,
    })
}

/// Whether a notice is about the sign-in and sign-up forms (and so belongs beside them).
pub fn is_account_notice(code: &str) -> bool {
    matches!(
        code,
        "bad-credentials"
            | "invalid-signin"
            | "email-taken"
            | "invalid-signup"
            | "invalid-email"
            | "invalid-name"
            | "short-password"
            | "too-many-attempts"
            | "unavailable"
    )
}

/// The notice `code` asks for: an alert for a problem, a status otherwise; nothing for an
/// unknown code.
pub fn notice(code: Option<&str>) -> Markup {
    html! {
        @if let Some((text, problem)) = code.and_then(notice_text) {
            @if problem {
                p.notice.error role="alert" { (text) }
            } @else {
                p.notice role="status" { (text) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_notice_codes_show_nothing() {
        assert!(notice_text("<script>").is_none());
        assert!(notice_text("rated").is_some());
    }
}
