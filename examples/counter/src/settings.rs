//! The app's own settings, read from the environment (litefs-orm reads its `LITEFS_ORM_*`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};

/// Where the app listens when neither `COUNTER_ADDR` nor `PORT` is set.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// The counter's settings.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `COUNTER_ADDR` | address to listen on, e.g. `[::]:8080` | `127.0.0.1:8080` |
/// | `PORT` | port to listen on, on every IPv4 interface (`0.0.0.0:$PORT`); ignored when `COUNTER_ADDR` is set | unset |
/// | `COUNTER_NODE` | this node's name on the page | `FLY_MACHINE_ID` (with `FLY_REGION`), else the listen address |
/// | `COUNTER_PEERS` | the other nodes' base URLs, comma-separated, e.g. `http://n2:8080,http://n3:8080`, for `/cluster` | none (the primary is always asked) |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub addr: SocketAddr,
    /// This node's name, when configured; otherwise the listen address is used.
    pub node: Option<String>,
    /// The other nodes' base URLs.
    pub peers: Vec<String>,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let nonempty = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let addr = match (nonempty("COUNTER_ADDR"), nonempty("PORT")) {
            (Some(addr), _) => addr.parse().with_context(|| {
                format!("COUNTER_ADDR must be an address such as 127.0.0.1:8080 or [::]:8080, got {addr:?}")
            })?,
            (None, Some(port)) => {
                let port: u16 = port
                    .parse()
                    .with_context(|| format!("PORT must be a port number, got {port:?}"))?;
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
            }
            (None, None) => DEFAULT_ADDR,
        };
        let node = nonempty("COUNTER_NODE").or_else(|| {
            nonempty("FLY_MACHINE_ID").map(|id| match nonempty("FLY_REGION") {
                Some(region) => format!("{id} ({region})"),
                None => id,
            })
        });
        if node.as_ref().is_some_and(|n| n.len() > 200) {
            bail!("COUNTER_NODE is longer than 200 characters");
        }
        let peers = nonempty("COUNTER_PEERS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(check_peer)
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Settings { addr, node, peers })
    }
}

/// A peer's base URL, checked: `http://` or `https://` and a host.
fn check_peer(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.trim_end_matches('/').is_empty() => {
            Ok(url.trim_end_matches('/').to_owned())
        }
        _ => bail!("COUNTER_PEERS holds base URLs such as http://n2:8080, got {url:?}"),
    }
}

/// The address to reach a listener at: an unspecified IP (`0.0.0.0`, `[::]`) becomes loopback.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn no_variables_listen_on_localhost_8080_with_no_node_name() {
        let s = Settings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(s.addr, DEFAULT_ADDR);
        assert_eq!(s.node, None);
    }

    #[test]
    fn counter_addr_wins_over_port() {
        let s = Settings::from_lookup(lookup(&[("COUNTER_ADDR", "[::]:9000"), ("PORT", "7000")]))
            .unwrap();
        assert_eq!(s.addr, "[::]:9000".parse().unwrap());
    }

    #[test]
    fn port_alone_listens_on_every_ipv4_interface() {
        let s = Settings::from_lookup(lookup(&[("PORT", "7000")])).unwrap();
        assert_eq!(s.addr, "0.0.0.0:7000".parse().unwrap());
    }

    #[test]
    fn the_node_name_falls_back_to_the_fly_machine() {
        let s = Settings::from_lookup(lookup(&[
            ("FLY_MACHINE_ID", "148ed193b95d89"),
            ("FLY_REGION", "ams"),
        ]))
        .unwrap();
        assert_eq!(s.node.as_deref(), Some("148ed193b95d89 (ams)"));
        let s = Settings::from_lookup(lookup(&[("COUNTER_NODE", "n1"), ("FLY_MACHINE_ID", "x")]))
            .unwrap();
        assert_eq!(s.node.as_deref(), Some("n1"));
    }

    #[test]
    fn peers_are_a_comma_separated_list_of_base_urls() {
        let s = Settings::from_lookup(lookup(&[(
            "COUNTER_PEERS",
            "http://n2:8080/, http://n3:8080,",
        )]))
        .unwrap();
        assert_eq!(s.peers, ["http://n2:8080", "http://n3:8080"]);
    }

    #[test]
    fn a_peer_that_is_not_a_url_names_the_variable() {
        let err = Settings::from_lookup(lookup(&[("COUNTER_PEERS", "n2:8080")])).unwrap_err();
        assert!(err.to_string().contains("COUNTER_PEERS"), "{err}");
    }

    #[test]
    fn a_bad_address_names_the_variable() {
        let err = Settings::from_lookup(lookup(&[("COUNTER_ADDR", "localhost")])).unwrap_err();
        assert!(err.to_string().contains("COUNTER_ADDR"), "{err}");
        let err = Settings::from_lookup(lookup(&[("PORT", "http")])).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
    }

    #[test]
    fn unspecified_addresses_are_reached_on_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:8080".parse().unwrap());
        let any6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(reachable(any6), "127.0.0.1:8080".parse().unwrap());
        let one: SocketAddr = "127.0.0.2:1".parse().unwrap();
        assert_eq!(reachable(one), one);
    }
}
