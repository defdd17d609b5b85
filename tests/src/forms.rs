//! The pages' forms as a browser posts them, CSRF cookie and token included.

/// What a browser holds after loading a page: the CSRF cookie and the token the pages' forms
/// carry (see the gateway's `pages::csrf`). Forms posted without them are refused.
pub struct Forms {
    pub cookie: String,
    pub token: String,
}

impl Forms {
    /// Loads the home page of `base_url` as a new visitor and keeps its form token.
    pub async fn open(c: &reqwest::Client, base_url: &str) -> Forms {
        let r = c
            .get(format!("{base_url}/"))
            .send()
            .await
            .expect("home page");
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next())
            .find(|c| c.contains("bookstore_csrf="))
            .expect("a CSRF cookie")
            .to_owned();
        let page = r.text().await.expect("home page text");
        let token = page
            .split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a form token")
            .to_owned();
        Forms { cookie, token }
    }

    /// A form POST of `fields` (and the token) to `url`, with the CSRF cookie and `cookies`
    /// (e.g. a session's) as a browser would send it.
    pub fn post(
        &self,
        c: &reqwest::Client,
        url: &str,
        fields: &[(&str, &str)],
        cookies: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &self.token));
        let cookie = match cookies {
            Some(more) => format!("{}; {more}", self.cookie),
            None => self.cookie.clone(),
        };
        c.post(url).header("cookie", cookie).form(&form)
    }
}
