//! The same storage test against SQLite and PostgreSQL.

use platform::database::{LazyPool, connect, testing};
use users::store::{MIGRATOR, SqlUserStore, StoreError, UserRow, UserStore};

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

    assert!(store.delete("u1").await.unwrap());
    assert!(!store.delete("u1").await.unwrap());
    assert!(store.by_email("ada@x.org").await.unwrap().is_none());
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
