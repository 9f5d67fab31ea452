//! Broker URLs: `amqp://user:password@host:port/vhost?heartbeat=30`.
//!
//! See `docs/protocol.md`, section "Broker URLs".

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::percent_decode_str;

/// The URL used when none is given: a local broker with the default account.
pub const DEFAULT_URL: &str = "amqp://guest:guest@localhost:5672/%2f";

/// Why a broker URL was refused. Messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The scheme is not `amqp` or `amqps`.
    #[error("broker URL must start with amqp:// or amqps://")]
    Scheme,
    /// The port is not a number between 1 and 65535.
    #[error("invalid port {0:?} in broker URL")]
    Port(String),
    /// A percent escape does not decode to UTF-8.
    #[error("invalid percent-encoding in the {0} of the broker URL")]
    Encoding(&'static str),
    /// A query parameter has a value of the wrong form.
    #[error("invalid value {value:?} for {name} in broker URL")]
    Parameter {
        /// The parameter name.
        name: String,
        /// Its value.
        value: String,
    },
}

/// A parsed broker URL.
///
/// Its `Debug` and `Display` forms hide the password, so it can be logged.
///
/// ```
/// use bus_core::BrokerUrl;
/// let url: BrokerUrl = "amqp://app:s%40cret@rabbit:5673/prod?heartbeat=10".parse().unwrap();
/// assert_eq!(url.password, "s@cret");
/// assert_eq!(url.vhost, "prod");
/// assert_eq!(url.to_string(), "amqp://app:***@rabbit:5673/prod");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Whether the connection uses TLS (`amqps`).
    pub tls: bool,
    /// User name, percent-decoded. Default `guest`.
    pub user: String,
    /// Password, percent-decoded. Default `guest`.
    pub password: String,
    /// Host name or address. Default `localhost`.
    pub host: String,
    /// Port. Default 5672, or 5671 with TLS.
    pub port: u16,
    /// Virtual host, percent-decoded. Default `/`.
    pub vhost: String,
    /// The `heartbeat` parameter, in seconds.
    pub heartbeat: Option<u16>,
    /// The `connection_timeout` parameter (given in milliseconds).
    pub connection_timeout: Option<Duration>,
}

impl Default for BrokerUrl {
    fn default() -> Self {
        BrokerUrl {
            tls: false,
            user: "guest".into(),
            password: "guest".into(),
            host: "localhost".into(),
            port: 5672,
            vhost: "/".into(),
            heartbeat: None,
            connection_timeout: None,
        }
    }
}

fn decode(part: &str, what: &'static str) -> Result<String, UrlError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| UrlError::Encoding(what))
}

impl FromStr for BrokerUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<BrokerUrl, UrlError> {
        let (tls, rest) = if let Some(rest) = s.strip_prefix("amqp://") {
            (false, rest)
        } else if let Some(rest) = s.strip_prefix("amqps://") {
            (true, rest)
        } else {
            return Err(UrlError::Scheme);
        };
        let mut url = BrokerUrl {
            tls,
            port: if tls { 5671 } else { 5672 },
            ..BrokerUrl::default()
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, Some(path)),
            None => (rest, None),
        };
        let hostport = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                url.user = decode(user, "user name")?;
                url.password = decode(password, "password")?;
                hostport
            }
            None => authority,
        };
        let (host, port) = split_host_port(hostport);
        if !host.is_empty() {
            url.host = decode(host, "host")?;
        }
        if let Some(port) = port {
            url.port = match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(UrlError::Port(port.to_owned())),
            };
        }
        // pika (eventail's client) reads both "no path" and "/" as the
        // default vhost "/"; only a non-empty path names a vhost.
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            url.vhost = decode(path, "virtual host")?;
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || UrlError::Parameter {
                name: name.to_owned(),
                value: value.to_owned(),
            };
            match name {
                "heartbeat" => url.heartbeat = Some(value.parse().map_err(|_| bad())?),
                "connection_timeout" => {
                    let ms: u64 = value.parse().map_err(|_| bad())?;
                    url.connection_timeout = Some(Duration::from_millis(ms));
                }
                // Other parameters (TLS files, channel_max...) belong to
                // other clients; ignoring them keeps shared URLs usable.
                _ => {}
            }
        }
        Ok(url)
    }
}

/// Splits `host:port`, keeping IPv6 literals such as `[::1]:5672` whole.
fn split_host_port(hostport: &str) -> (&str, Option<&str>) {
    if let Some(rest) = hostport.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':'));
        }
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    }
}

impl BrokerUrl {
    /// `host:port`, as used in "no broker at host:port".
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BrokerUrl {
    /// The URL with the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        let user =
            percent_encoding::utf8_percent_encode(&self.user, percent_encoding::NON_ALPHANUMERIC);
        let vhost =
            percent_encoding::utf8_percent_encode(&self.vhost, percent_encoding::NON_ALPHANUMERIC);
        write!(f, "{scheme}://{user}:***@{}/{vhost}", self.address())
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> BrokerUrl {
        s.parse().unwrap()
    }

    #[test]
    fn defaults() {
        let u = parse("amqp://localhost");
        assert_eq!((u.user.as_str(), u.password.as_str()), ("guest", "guest"));
        assert_eq!(
            (u.host.as_str(), u.port, u.vhost.as_str()),
            ("localhost", 5672, "/")
        );
        assert!(!u.tls);
        assert_eq!(parse("amqps://h").port, 5671);
        assert_eq!(parse("amqp://").host, "localhost");
        assert_eq!(parse("amqp://h/").vhost, "/");
        assert_eq!(parse(DEFAULT_URL), BrokerUrl::default());
    }

    #[test]
    fn full_url_with_escapes_and_parameters() {
        let u = parse(
            "amqps://us%3Aer:p%40ss%2Fw@rabbit.example:5999/my%2Fvhost?heartbeat=15&connection_timeout=2500&cacertfile=x",
        );
        assert!(u.tls);
        assert_eq!(u.user, "us:er");
        assert_eq!(u.password, "p@ss/w");
        assert_eq!(u.host, "rabbit.example");
        assert_eq!(u.port, 5999);
        assert_eq!(u.vhost, "my/vhost");
        assert_eq!(u.heartbeat, Some(15));
        assert_eq!(u.connection_timeout, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn ipv6_and_password_with_at_sign() {
        let u = parse("amqp://a:b@c@[::1]:5673/v");
        assert_eq!(u.user, "a");
        assert_eq!(u.password, "b@c");
        assert_eq!(u.host, "::1");
        assert_eq!(u.address(), "[::1]:5673");
    }

    #[test]
    fn errors_are_precise_and_never_show_the_password() {
        assert_eq!("http://x".parse::<BrokerUrl>(), Err(UrlError::Scheme));
        assert_eq!(
            "amqp://h:99999".parse::<BrokerUrl>(),
            Err(UrlError::Port("99999".into()))
        );
        assert_eq!(
            "amqp://h:0".parse::<BrokerUrl>(),
            Err(UrlError::Port("0".into()))
        );
        let err = "amqp://u:secret@h?heartbeat=soon"
            .parse::<BrokerUrl>()
            .unwrap_err();
        assert_eq!(
            err,
            UrlError::Parameter {
                name: "heartbeat".into(),
                value: "soon".into()
            }
        );
        assert!(!err.to_string().contains("secret"));
        assert_eq!(
            "amqp://u:%ff@h".parse::<BrokerUrl>(),
            Err(UrlError::Encoding("password"))
        );
    }

    #[test]
    fn redacted_forms() {
        let u = parse("amqp://app:topsecret@h:1/%2f");
        assert_eq!(u.to_string(), "amqp://app:***@h:1/%2F");
        assert!(!format!("{u:?}").contains("topsecret"));
        assert!(format!("{u:?}").contains("***"));
    }
}
