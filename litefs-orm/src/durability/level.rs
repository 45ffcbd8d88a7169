//! The durability a write is acknowledged with.

use crate::error::{Error, Result};

/// How many nodes must hold a commit before the primary acknowledges it
/// ([`Config::durability`](crate::Config::durability), `LITEFS_ORM_DURABILITY`).
///
/// ```
/// use litefs_orm::Durability;
/// assert_eq!("candidates".parse::<Durability>().unwrap(), Durability::Candidates);
/// assert_eq!("2".parse::<Durability>().unwrap(), Durability::Count(2));
/// assert_eq!(Durability::default(), Durability::Local);
/// assert_eq!(Durability::Count(2).to_string(), "2");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledged once committed on the primary (and, for a forwarded call, once the
    /// calling replica holds it): LiteFS's own guarantee. The default.
    #[default]
    Local,
    /// Acknowledged once every live candidate holds the commit too, so that whichever node
    /// LiteFS elects next has it. With a static lease, or no other live candidate, this is
    /// [`Local`](Durability::Local).
    Candidates,
    /// Acknowledged once at least this many live nodes besides the primary hold it,
    /// candidates or not.
    Count(u32),
}

impl std::str::FromStr for Durability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Durability::Local),
            "candidates" => Ok(Durability::Candidates),
            n => match n.parse::<u32>() {
                Ok(0) => Ok(Durability::Local),
                Ok(k) => Ok(Durability::Count(k)),
                Err(_) => Err(Error::Config(format!(
                    "LITEFS_ORM_DURABILITY must be `local`, `candidates` or a number of nodes, got {s:?}"
                ))),
            },
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Durability::Local => f.write_str("local"),
            Durability::Candidates => f.write_str("candidates"),
            Durability::Count(k) => write!(f, "{k}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_reads_back_from_its_name() {
        for d in [
            Durability::Local,
            Durability::Candidates,
            Durability::Count(3),
        ] {
            assert_eq!(d.to_string().parse::<Durability>().unwrap(), d);
        }
    }

    #[test]
    fn zero_nodes_is_local() {
        assert_eq!("0".parse::<Durability>().unwrap(), Durability::Local);
    }

    #[test]
    fn a_word_that_is_no_level_names_the_variable() {
        let e = "all".parse::<Durability>().unwrap_err();
        assert!(e.to_string().contains("LITEFS_ORM_DURABILITY"), "{e}");
    }
}
