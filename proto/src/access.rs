//! An access key as every tier sees it (ADR 0027): its rights on a bucket,
//! the same at the gateway's early check and where the meta tier applies a
//! write, and its S3 DisplayName.

/// A key's rights on one bucket. Owner implies read and write; read and
/// write are independent of each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

impl Rights {
    pub const NONE: Rights = Rights {
        read: false,
        write: false,
        owner: false,
    };
    pub const ALL: Rights = Rights {
        read: true,
        write: true,
        owner: true,
    };

    pub fn can_read(self) -> bool {
        self.owner || self.read
    }

    pub fn can_write(self) -> bool {
        self.owner || self.write
    }
}

/// S3's DisplayName of an access key: its name, else its id.
pub fn display_name(id: &str, name: &str) -> String {
    if name.is_empty() { id } else { name }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_implies_read_and_write_which_are_independent() {
        assert!(Rights::ALL.can_read() && Rights::ALL.can_write());
        let owner = Rights {
            owner: true,
            ..Rights::NONE
        };
        assert!(owner.can_read() && owner.can_write());
        let read = Rights {
            read: true,
            ..Rights::NONE
        };
        assert!(read.can_read() && !read.can_write());
        let write = Rights {
            write: true,
            ..Rights::NONE
        };
        assert!(!write.can_read() && write.can_write());
        assert!(!Rights::NONE.can_read() && !Rights::NONE.can_write());
        assert_eq!(Rights::default(), Rights::NONE);
    }

    #[test]
    fn a_display_name_is_the_name_else_the_id() {
        assert_eq!(display_name("AK1", "backups"), "backups");
        assert_eq!(display_name("AK1", ""), "AK1");
    }
}
