//! The same storage test against SQLite and PostgreSQL.

use platform::database::{LazyPool, connect, testing};
use users::store::{
    MIGRATOR, NewPassword, OutboxKind, SessionRow, SqlUserStore, StoreError, UserRow, UserStore,
};

fn row(id: &str, email: &str) -> UserRow {
    UserRow {
        id: id.into(),
        email: email.into(),
        display_name: "Reader".into(),
        password_hash: "$argon2id$fake".into(),
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

async fn exercise(url: &str) {
    let pool = LazyPool::default();
    pool.set(connect(url, 4, &MIGRATOR).await.unwrap());
    let store = SqlUserStore::new(pool);

    store
        .insert(&row("u1", "Ada@x.org"), "ada@x.org")
        .await
        .unwrap();
    let dup = store
        .insert(&row("u2", "ADA@x.org"), "ada@x.org")
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::EmailTaken), "{dup:?}");

    let found = store.by_email("ada@x.org").await.unwrap().unwrap();
    assert_eq!(found, row("u1", "Ada@x.org"));
    assert!(store.by_id("u2").await.unwrap().is_none());

    let updated = store
        .update("u1", Some("Ada L."), None, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.user.display_name, "Ada L.");
    assert_eq!(
        updated.user.password_hash, "$argon2id$fake",
        "an unset field is kept"
    );
    assert_eq!(updated.user.updated_at_ms, 5);
    assert!(updated.ended.is_empty());
    assert!(
        store
            .update("nobody", Some("x"), None, 6)
            .await
            .unwrap()
            .is_none()
    );

    password_changes_end_the_other_sessions(&store, url).await;

    assert!(store.delete("u1", 9_000, 10).await.unwrap());
    assert!(!store.delete("u1", 9_000, 11).await.unwrap());
    assert!(store.by_email("ada@x.org").await.unwrap().is_none());

    // The deletion queued exactly one outbox entry, in the same transaction; so does a sign-out.
    store.sign_out("session-1", 8_000, 12).await.unwrap();
    let due = store.outbox_due(12, 10).await.unwrap();
    assert_eq!(due.len(), 2, "{due:?}");
    assert_eq!(due[0].kind, Some(OutboxKind::DeleteUser));
    assert_eq!(due[0].subject, "u1");
    assert_eq!(due[1].kind, Some(OutboxKind::RevokeSession));
    assert_eq!(due[1].expires_at_ms, 8_000);
    store.outbox_retry(&due[0].id, 1, 100).await.unwrap();
    let due_later = store.outbox_due(50, 10).await.unwrap();
    assert_eq!(due_later.len(), 1, "the retried entry waits for its time");
    store.outbox_done(&due_later[0].id).await.unwrap();
    let at_100 = store.outbox_due(100, 10).await.unwrap();
    assert_eq!(at_100.len(), 1);
    assert_eq!(at_100[0].attempts, 1);

    // Both revocations are readable by the sync that mirrors them into memory.
    let db = connect(url, 1, &MIGRATOR).await.unwrap();
    let mut ended = platform::revocation::load_since(&db, 0, 20).await.unwrap();
    ended.sort();
    assert_eq!(
        ended,
        vec![
            ("s:session-1".to_owned(), 8_000),
            ("u:u1".to_owned(), 9_000)
        ]
    );
}

fn session(id: &str, user_id: &str, expires_at_ms: i64) -> SessionRow {
    SessionRow {
        id: id.into(),
        user_id: user_id.into(),
        expires_at_ms,
    }
}

/// Sessions of u1 (whose hash is `$argon2id$fake`): a password change ends all but the
/// caller's, in the same transaction, and only if the checked hash is still the account's.
async fn password_changes_end_the_other_sessions(store: &SqlUserStore, url: &str) {
    for (id, expires) in [("keep", 7_000), ("other", 7_000), ("old", 6)] {
        assert!(
            store
                .start_session(&session(id, "u1", expires), "$argon2id$fake", 5)
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .start_session(&session("late", "u1", 7_000), "$argon2id$stale", 5)
            .await
            .unwrap(),
        "a session checked against a password that is no longer the account's is refused"
    );
    let stale = NewPassword {
        hash: "$argon2id$new",
        replaces: "$argon2id$stale",
        keep_session: "keep",
    };
    let e = store.update("u1", None, Some(stale), 6).await.unwrap_err();
    assert!(matches!(e, StoreError::PasswordChanged), "{e:?}");
    let change = NewPassword {
        hash: "$argon2id$new",
        replaces: "$argon2id$fake",
        keep_session: "keep",
    };
    let updated = store
        .update("u1", None, Some(change), 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.user.password_hash, "$argon2id$new");
    assert_eq!(
        updated.ended,
        vec![session("other", "u1", 7_000)],
        "the caller's session and the expired one are not ended"
    );
    let db = connect(url, 1, &MIGRATOR).await.unwrap();
    let ended = platform::revocation::load_since(&db, 0, 7).await.unwrap();
    assert_eq!(ended, vec![("s:other".to_owned(), 7_000)]);
    let due = store.outbox_due(7, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, Some(OutboxKind::RevokeSession));
    assert_eq!(due[0].subject, "other");
    store.outbox_done(&due[0].id).await.unwrap();
    // A second change finds nothing else to end; the hash is compared again.
    let again = NewPassword {
        hash: "$argon2id$fake",
        replaces: "$argon2id$new",
        keep_session: "keep",
    };
    let updated = store
        .update("u1", None, Some(again), 8)
        .await
        .unwrap()
        .unwrap();
    assert!(updated.ended.is_empty());
    assert!(
        store
            .update("nobody", None, Some(again), 8)
            .await
            .unwrap()
            .is_none()
    );
    // The revocation is cleared for the checks below, which count what else is recorded.
    sqlx::query("DELETE FROM revocations")
        .execute(&db)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_store_works_on_sqlite() {
    exercise(&testing::sqlite_url("users-store")).await;
}

#[tokio::test]
async fn the_store_works_on_postgres() {
    if let Some(url) = testing::postgres_url("users").await {
        exercise(&url).await;
    }
}
