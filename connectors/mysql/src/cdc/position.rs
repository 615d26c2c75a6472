//! Binlog positions (`{"file": "mysql-bin.000003", "pos": 1178, "gtid": "0-1-46"}`) and the
//! MariaDB GTID state they carry.

use std::collections::BTreeMap;
use std::fmt;

use fdi_connector::{ConnectorError, Result, SourcePosition};
use serde::{Deserialize, Serialize};

/// Where a binlog reader stands: the next event to read is at `pos` in `file`; `gtid` (MariaDB)
/// is the GTID state reached there (`domain-server-seq` per domain, comma-separated).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BinlogPosition {
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub pos: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
}

impl BinlogPosition {
    pub fn new(file: impl Into<String>, pos: u64, gtid: Option<&GtidState>) -> Self {
        Self {
            file: file.into(),
            pos,
            gtid: gtid.filter(|g| !g.is_empty()).map(|g| g.to_string()),
        }
    }

    pub fn to_source(&self) -> SourcePosition {
        SourcePosition(serde_json::to_value(self).unwrap_or_default())
    }

    /// Read a stored position; it needs a file name or a GTID state.
    pub fn from_source(p: &SourcePosition) -> Result<Self> {
        let mut pos: Self = serde_json::from_value(p.0.clone())
            .map_err(|e| ConnectorError::user(format!("MySQL binlog position {}: {e}", p.0)))?;
        pos.gtid = pos.gtid.filter(|g| !g.trim().is_empty());
        if let Some(g) = &pos.gtid {
            GtidState::parse(g)?;
        }
        if pos.file.is_empty() && pos.gtid.is_none() {
            return Err(ConnectorError::user(format!(
                "MySQL binlog position {}: needs \"file\" (and \"pos\") or \"gtid\"",
                p.0
            )));
        }
        if pos.pos < 4 {
            pos.pos = 4;
        }
        Ok(pos)
    }
}

/// A MariaDB GTID state: the last `server-seq` of each replication domain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GtidState(BTreeMap<u32, (u32, u64)>);

impl GtidState {
    /// Parse `0-1-46,1-2-7` (empty text: the empty state).
    pub fn parse(text: &str) -> Result<Self> {
        let mut state = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || ConnectorError::user(format!("MariaDB GTID {text:?}: bad part {part:?}"));
            let mut it = part.split('-');
            let (Some(d), Some(s), Some(n), None) = (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad());
            };
            let d: u32 = d.parse().map_err(|_| bad())?;
            let s: u32 = s.parse().map_err(|_| bad())?;
            let n: u64 = n.parse().map_err(|_| bad())?;
            state.insert(d, (s, n));
        }
        Ok(Self(state))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A transaction with this GTID was applied.
    pub fn apply(&mut self, gtid: Gtid) {
        self.0.insert(gtid.domain, (gtid.server, gtid.seq));
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (d, (s, n))) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}-{s}-{n}")?;
        }
        Ok(())
    }
}

/// One MariaDB GTID, as its GTID event (type 162) carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
    /// FL_STANDALONE: an event group without BEGIN / COMMIT (DDL): it ends with its one
    /// statement.
    pub standalone: bool,
}

impl Gtid {
    /// Decode a MariaDB GTID event's body: seq_no (8 bytes LE), domain_id (4), flags2 (1), ...;
    /// the server id is the event header's.
    pub fn decode(data: &[u8], server: u32) -> Option<Self> {
        let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
        let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
        let flags2 = *data.get(12)?;
        Some(Self {
            domain,
            server,
            seq,
            standalone: flags2 & 1 != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_state_round_trips_and_applies() {
        let mut s = GtidState::parse("1-2-7, 0-1-46").unwrap();
        assert_eq!(s.to_string(), "0-1-46,1-2-7");
        s.apply(Gtid::decode(&[47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0], 1).unwrap());
        assert_eq!(s.to_string(), "0-1-47,1-2-7");
        assert!(GtidState::parse("").unwrap().is_empty());
        assert!(GtidState::parse("0-1").is_err());
        assert!(GtidState::parse("a-1-2").is_err());
    }

    #[test]
    fn positions_round_trip() {
        let p = BinlogPosition::new("mysql-bin.000003", 1178, None);
        let back = BinlogPosition::from_source(&p.to_source()).unwrap();
        assert_eq!(back, p);
        assert_eq!(
            p.to_source().0,
            serde_json::json!({"file": "mysql-bin.000003", "pos": 1178})
        );
        let g = GtidState::parse("0-1-5").unwrap();
        let p = BinlogPosition::new("f.000001", 4, Some(&g));
        assert_eq!(p.to_source().0["gtid"], "0-1-5");
        assert!(BinlogPosition::from_source(&SourcePosition(serde_json::json!({}))).is_err());
        assert!(
            BinlogPosition::from_source(&SourcePosition(serde_json::json!({"gtid": ""}))).is_err()
        );
    }
}
