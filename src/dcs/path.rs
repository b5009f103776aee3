//! Key names under `/<namespace>/<scope>/`.

/// The absolute key names of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    /// `/<namespace>/<scope>` with runs of `/` collapsed, no trailing `/`.
    base: String,
    /// This member's name.
    name: String,
}

impl KeyPaths {
    /// Patroni joins `''`, the namespace and the scope with `/` and then
    /// collapses runs of slashes, so `/service/`, `service` and `//service`
    /// all give `/service/<scope>`.
    pub fn new(namespace: &str, scope: &str, name: &str) -> KeyPaths {
        let joined = format!("/{namespace}/{scope}");
        let mut base = String::with_capacity(joined.len());
        for c in joined.chars() {
            if !(c == '/' && base.ends_with('/')) {
                base.push(c);
            }
        }
        KeyPaths {
            base,
            name: name.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster prefix, with a trailing `/`.
    pub fn prefix(&self) -> String {
        format!("{}/", self.base)
    }

    /// An absolute key for a relative one (`leader`, `members/x`).
    pub fn key(&self, relative: &str) -> String {
        format!("{}/{}", self.base, relative.trim_start_matches('/'))
    }

    pub fn leader(&self) -> String {
        self.key("leader")
    }

    pub fn member(&self) -> String {
        self.key(&format!("members/{}", self.name))
    }

    /// The relative key for an absolute one under this cluster's prefix.
    pub fn relative<'a>(&self, absolute: &'a str) -> Option<&'a str> {
        absolute.strip_prefix(&self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_slashes_collapse() {
        for ns in ["/service/", "service", "//service//", "/service"] {
            let p = KeyPaths::new(ns, "demo", "node1");
            assert_eq!(p.leader(), "/service/demo/leader");
            assert_eq!(p.member(), "/service/demo/members/node1");
            assert_eq!(p.prefix(), "/service/demo/");
        }
        assert_eq!(
            KeyPaths::new("/", "demo", "n").key("config"),
            "/demo/config"
        );
        assert_eq!(
            KeyPaths::new("/service/", "demo", "n").relative("/service/demo/members/a"),
            Some("members/a")
        );
    }
}
