//! `users keygen`: a new Ed25519 token key pair, printed as the two settings it feeds, so that
//! `make run` and the Kubernetes secrets script make keys the same way.

use std::{ffi::OsString, process::ExitCode};

use secrecy::ExposeSecret;

/// Prints a new Ed25519 token key pair.
///
/// `TOKEN_SIGNING_KEY=KID=BASE64` is for the users service alone; `TOKEN_PUBLIC_KEYS=KID=BASE64`
/// is for every service that checks tokens (join several with commas during a rotation: see
/// docs/security.md). The key id is the first 16 hex digits of the public key's SHA-256. Write
/// the output where only its owner can read it (`umask 077`).
#[derive(clap::Parser, Debug)]
#[command(name = "keygen", bin_name = "users keygen", version)]
pub struct Keygen {}

/// The two lines `users keygen` prints.
pub fn lines() -> String {
    let keys = platform::auth::generate_keys();
    format!(
        "TOKEN_SIGNING_KEY={}\nTOKEN_PUBLIC_KEYS={}\n",
        keys.signing_key.expose_secret(),
        keys.public_key
    )
}

/// Runs `users keygen` with `args` (the first being `keygen`).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    use clap::Parser;
    if let Err(e) = Keygen::try_parse_from(args) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
    }
    print!("{}", lines());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_prints_a_signing_key_and_its_public_key_that_users_accepts_together() {
        let out = lines();
        let signing = out
            .lines()
            .find_map(|l| l.strip_prefix("TOKEN_SIGNING_KEY="));
        let public = out
            .lines()
            .find_map(|l| l.strip_prefix("TOKEN_PUBLIC_KEYS="));
        let signer =
            platform::auth::TokenSigner::from_secret(&signing.unwrap().to_owned().into()).unwrap();
        let verifier = platform::auth::TokenVerifier::parse(public.unwrap()).unwrap();
        verifier.check_holds(&signer).unwrap();
        assert_ne!(lines(), out, "a new pair each time");
    }
}
