//! PLACEHOLDER while the real parser is written (helper-1 replaces this file).
#![allow(missing_docs)]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TransportHost { pub hostname: String, pub port: Option<u16>, pub username: Option<String>, pub password: Option<String> }
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TransportUrl { scheme: String, hosts: Vec<TransportHost>, vh: Option<String>, q: Vec<(String,String)> }
impl TransportUrl {
    pub fn parse(s: &str) -> crate::Result<Self> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| crate::Error::InvalidUrl{url: s.into(), reason: "missing scheme".into()})?;
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let hosts = if host.is_empty() { vec![] } else { vec![TransportHost{hostname: host.into(), port: None, username: None, password: None}] };
        Ok(TransportUrl{scheme: scheme.to_ascii_lowercase(), hosts, vh: None, q: vec![]})
    }
    pub fn scheme(&self) -> &str { &self.scheme }
    pub fn hosts(&self) -> &[TransportHost] { &self.hosts }
    pub fn virtual_host(&self) -> Option<&str> { self.vh.as_deref() }
    pub fn query(&self) -> &[(String, String)] { &self.q }
    pub fn query_value(&self, key: &str) -> Option<&str> { self.q.iter().rev().find(|(k,_)| k==key).map(|(_,v)| v.as_str()) }
}
impl std::str::FromStr for TransportUrl { type Err = crate::Error; fn from_str(s: &str) -> crate::Result<Self> { Self::parse(s) } }
impl std::fmt::Display for TransportUrl { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{}://", self.scheme) } }
