//! The same storage test against SQLite and PostgreSQL.

use platform::database::{LazyPool, connect, testing};
use users::store::{MIGRATOR, OutboxKind, SqlUserStore, StoreError, UserRow, UserStore};

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
    assert_eq!(updated.display_name, "Ada L.");
    assert_eq!(
        updated.password_hash, "$argon2id$fake",
        "an unset field is kept"
    );
    assert_eq!(updated.updated_at_ms, 5);
    assert!(
        store
            .update("nobody", Some("x"), None, 6)
            .await
            .unwrap()
            .is_none()
    );

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
