//! Tokens signed, checked, refused and revoked, end to end through the interceptor.

use std::time::Duration;

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ring::signature::{ED25519, UnparsedPublicKey};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tonic::Request;

use super::{keys::has_small_order, *};
use tonic::service::Interceptor;

/// A signer and the verifier of its public key.
fn pair() -> (TokenSigner, TokenVerifier, GeneratedKeys) {
    let keys = generate_keys();
    let signer = TokenSigner::from_secret(&keys.signing_key).unwrap();
    let verifier = TokenVerifier::parse(&keys.public_key).unwrap();
    (signer, verifier, keys)
}

fn part(token: &str, i: usize) -> String {
    token.split('.').nth(i).unwrap().to_owned()
}

fn json(part: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[test]
fn a_token_verifies_with_the_public_key_of_the_key_that_issued_it() {
    let (signer, verifier, keys) = pair();
    let (t, claims) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
    assert_eq!(verifier.verify_at(&t, 1_030).unwrap(), claims);
    assert_eq!(claims.sub, "u1");
    let header = json(&part(&t, 0));
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], keys.kid.as_str());
    assert_eq!(signer.kid(), keys.kid);
}

#[test]
fn an_expired_token_is_refused() {
    let (signer, verifier, _) = pair();
    let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
    assert_eq!(verifier.verify_at(&t, 1_060), Err(TokenError::Expired));
}

#[test]
fn a_token_signed_by_a_key_the_verifier_does_not_hold_is_refused() {
    let (signer, _, _) = pair();
    let (_, other, _) = pair();
    let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
    assert_eq!(other.verify_at(&t, 1_001), Err(TokenError::UnknownKey));
}

#[test]
fn a_token_naming_a_known_key_but_signed_by_another_is_refused() {
    let (_, verifier, known) = pair();
    let other = generate_keys();
    // The other private key under the known key's id.
    let (_, other_der) = other.signing_key.expose_secret().split_once('=').unwrap();
    let impostor =
        TokenSigner::from_secret(&SecretString::from(format!("{}={other_der}", known.kid)))
            .unwrap();
    let (t, _) = impostor.issue_at("u1", 1_000, Duration::from_secs(60));
    assert_eq!(verifier.verify_at(&t, 1_001), Err(TokenError::BadSignature));
}

#[test]
fn a_verifier_holding_two_keys_accepts_the_tokens_of_both() {
    let (a, _, ka) = pair();
    let (b, _, kb) = pair();
    let both = TokenVerifier::parse(&format!("{},{}", ka.public_key, kb.public_key)).unwrap();
    for signer in [&a, &b] {
        let (t, claims) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
        assert_eq!(both.verify_at(&t, 1_001).unwrap(), claims);
    }
    assert_eq!(both.kids().collect::<Vec<_>>(), [ka.kid, kb.kid]);
}

#[test]
fn a_token_whose_claims_were_changed_is_refused() {
    let (signer, verifier, _) = pair();
    let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
    let mut claims = json(&part(&t, 1));
    claims["sub"] = "u2".into();
    let forged = format!("{}.{}.{}", part(&t, 0), b64(&claims), part(&t, 2));
    assert_eq!(
        verifier.verify_at(&forged, 1_001),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        verifier.verify_at("garbage", 1_001),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        verifier.verify_at("a.b.c.d", 1_001),
        Err(TokenError::Malformed)
    );
    let long = format!("{t}{}", "A".repeat(MAX_TOKEN_LEN));
    assert_eq!(verifier.verify_at(&long, 1_001), Err(TokenError::Malformed));
}

#[test]
fn a_token_of_the_hmac_era_is_refused() {
    use hmac::{Hmac, Mac};
    let (_, verifier, _) = pair();
    let payload = b64(&serde_json::json!({"sub":"u1","sid":"s","iat":1000,"exp":99999}));
    let mut mac = Hmac::<Sha256>::new_from_slice(&[b'a'; 32]).unwrap();
    mac.update(payload.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    assert_eq!(
        verifier.verify_at(&format!("{payload}.{sig}"), 1_001),
        Err(TokenError::Malformed)
    );
}

#[test]
fn a_token_with_another_algorithm_is_refused_whatever_it_is_signed_with() {
    use hmac::{Hmac, Mac};
    let (signer, verifier, keys) = pair();
    let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
    let claims = part(&t, 1);
    // HS256 keyed with the public key (the classic confusion), and `none`.
    let hs = b64(&serde_json::json!({"alg":"HS256","kid":keys.kid,"typ":"JWT"}));
    let mut mac = Hmac::<Sha256>::new_from_slice(signer.public_key()).unwrap();
    mac.update(format!("{hs}.{claims}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    assert_eq!(
        verifier.verify_at(&format!("{hs}.{claims}.{sig}"), 1_001),
        Err(TokenError::Algorithm)
    );
    let none = b64(&serde_json::json!({"alg":"none","kid":keys.kid}));
    assert_eq!(
        verifier.verify_at(&format!("{none}.{claims}."), 1_001),
        Err(TokenError::Algorithm)
    );
    // A header with fields this verifier does not understand.
    let crit = b64(&serde_json::json!({"alg":"EdDSA","kid":keys.kid,"crit":["exp"]}));
    assert_eq!(
        verifier.verify_at(&format!("{crit}.{claims}.{}", part(&t, 2)), 1_001),
        Err(TokenError::Malformed)
    );
}

#[test]
fn each_token_names_a_session_of_its_own() {
    let (signer, _, _) = pair();
    let (_, a) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
    let (_, b) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
    assert_ne!(a.sid, b.sid);
    assert!(a.sid.len() >= 20);
}

#[test]
fn a_signing_key_that_is_not_an_ed25519_pkcs8_key_is_refused() {
    let refused = |s: &str| TokenSigner::from_secret(&SecretString::from(s.to_owned()));
    assert_eq!(
        refused("a".repeat(32).as_str()).unwrap_err(),
        KeyError::SigningKeyFormat
    );
    assert_eq!(
        refused(&format!("k1={}", "a".repeat(32))).unwrap_err(),
        KeyError::SigningKeyRejected("InvalidEncoding".into())
    );
    assert_eq!(refused("k1=%%%").unwrap_err(), KeyError::SigningKeyFormat);
    assert!(matches!(refused("bad kid=AAAA"), Err(KeyError::KeyId(_))));
    let keys = generate_keys();
    let (_, der) = keys.signing_key.expose_secret().split_once('=').unwrap();
    assert!(refused(&format!("k1={der}")).is_ok());
    // The message never carries the key.
    let message = refused(&format!("k1={}", "a".repeat(32)))
        .unwrap_err()
        .to_string();
    assert!(!message.contains("aaaa"), "{message}");
}

#[test]
fn an_openssl_pkcs8_v1_key_is_read() {
    // `openssl genpkey -algorithm ed25519 -outform DER | base64`: no public key inside.
    let v1 = "MC4CAQAwBQYDK2VwBCIEIGf9LkU3Ha/8Tmq3wB7isFOsKkdXPDIsRzVsgXMesTt7";
    let signer = TokenSigner::from_secret(&SecretString::from(format!("ossl={v1}"))).unwrap();
    let public = format!("ossl={}", STANDARD.encode(signer.public_key()));
    let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
    assert!(
        TokenVerifier::parse(&public)
            .unwrap()
            .verify_at(&t, 1_001)
            .is_ok()
    );
}

#[test]
fn public_keys_of_the_wrong_length_small_order_or_given_twice_are_refused() {
    let keys = generate_keys();
    assert_eq!(
        TokenVerifier::parse("").unwrap_err(),
        KeyError::NoPublicKeys
    );
    assert_eq!(
        TokenVerifier::parse(&format!("k1={}", STANDARD.encode([7u8; 31]))).unwrap_err(),
        KeyError::PublicKeyLength {
            kid: "k1".into(),
            len: 31
        }
    );
    assert!(matches!(
        TokenVerifier::parse("k1"),
        Err(KeyError::PublicKeyFormat(_))
    ));
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for weak in [[0u8; 32], identity, {
        identity[31] = 0x80;
        identity
    }] {
        assert_eq!(
            TokenVerifier::parse(&format!("w={}", STANDARD.encode(weak))).unwrap_err(),
            KeyError::WeakPublicKey("w".into())
        );
    }
    assert_eq!(
        TokenVerifier::parse(&format!("{0},{0}", keys.public_key)).unwrap_err(),
        KeyError::DuplicateKeyId(keys.kid.clone())
    );
    // URL-safe and unpadded spellings of a good key are fine.
    let (kid, b) = keys.public_key.split_once('=').unwrap();
    let url = URL_SAFE_NO_PAD.encode(STANDARD.decode(b).unwrap());
    assert!(TokenVerifier::parse(&format!(" {kid}={url} ,")).is_ok());
}

#[test]
fn under_the_identity_as_public_key_anyone_could_forge_a_signature() {
    // Why small-order keys are refused: ring verifies (R = identity, S = 0) for any message.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut sig = [0u8; 64];
    sig[0] = 1;
    assert!(
        UnparsedPublicKey::new(&ED25519, identity)
            .verify(b"any message", &sig)
            .is_ok()
    );
    assert!(has_small_order(&identity));
    let (signer, _, _) = pair();
    assert!(!has_small_order(signer.public_key().try_into().unwrap()));
}

#[test]
fn a_verifier_knows_whether_it_holds_a_signers_key() {
    let (signer, verifier, _) = pair();
    let (other, other_verifier, _) = pair();
    assert!(verifier.check_holds(&signer).is_ok());
    assert_eq!(
        other_verifier.check_holds(&signer).unwrap_err(),
        KeyError::SigningKeyNotPublished(signer.kid().into())
    );
    assert!(other_verifier.check_holds(&other).is_ok());
}

#[test]
fn debug_output_shows_key_ids_and_no_key() {
    let (signer, verifier, keys) = pair();
    let (_, der) = keys.signing_key.expose_secret().split_once('=').unwrap();
    let shown = format!("{signer:?} {verifier:?}");
    assert!(shown.contains(&keys.kid), "{shown}");
    assert!(!shown.contains(&der[..20]), "{shown}");
}

#[test]
fn a_revoked_session_or_user_is_refused_and_others_are_not() {
    let (k, verifier, _) = pair();
    let revocations = Revocations::default();
    let mut i = AuthInterceptor::with_revocations(verifier, revocations.clone());
    let call = |i: &mut AuthInterceptor, t: &str| {
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
        i.call(req).map(|r| caller(&r).unwrap())
    };
    let (t1, c1) = k.issue("u1", Duration::from_secs(60));
    let (t2, _) = k.issue("u1", Duration::from_secs(60));
    let (t3, _) = k.issue("u2", Duration::from_secs(60));
    assert_eq!(call(&mut i, &t1).unwrap().session_id, c1.sid);
    revocations.insert(Revocations::session_key(&c1.sid), c1.exp);
    let refused = call(&mut i, &t1).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(refused.message().contains("ended"), "{}", refused.message());
    assert!(
        call(&mut i, &t2).is_ok(),
        "another session of the same user"
    );
    revocations.insert(Revocations::user_key("u1"), c1.exp);
    assert!(call(&mut i, &t2).is_err(), "every token of a deleted user");
    assert!(call(&mut i, &t3).is_ok());
}

#[test]
fn revocations_are_forgotten_once_their_tokens_have_expired() {
    let r = Revocations::default();
    r.insert("s:a".into(), 100);
    r.insert("s:b".into(), 200);
    r.insert("s:a".into(), 50);
    r.prune(100);
    assert_eq!(r.len(), 1);
    r.prune(200);
    assert!(r.is_empty());
}

#[test]
fn the_interceptor_turns_a_good_token_into_a_caller_and_refuses_a_bad_one() {
    let (k, verifier, _) = pair();
    let (t, _) = k.issue("u7", Duration::from_secs(60));
    let mut i = AuthInterceptor::new(verifier);

    let mut req = Request::new(());
    req.metadata_mut()
        .insert("authorization", format!("Bearer {t}").parse().unwrap());
    let req = i.call(req).unwrap();
    assert_eq!(caller(&req).unwrap().user_id, "u7");

    let anonymous = i.call(Request::new(())).unwrap();
    assert_eq!(
        caller(&anonymous).unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    let (stranger, _, _) = pair();
    let (foreign, _) = stranger.issue("u7", Duration::from_secs(60));
    let mut bad = Request::new(());
    bad.metadata_mut().insert(
        "authorization",
        format!("Bearer {foreign}").parse().unwrap(),
    );
    let refused = i.call(bad).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(
        refused.message().contains("does not know"),
        "{}",
        refused.message()
    );
}
