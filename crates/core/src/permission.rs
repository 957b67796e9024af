//! The permission matrix of TALE-COMPAT §4 as one declarative table.
//!
//! Every route names one [`Access`]; the HTTP layer checks it before the handler runs and hands the
//! handler a [`Grant`], which services demand as proof. A grant can only be made by [`Grant::check`].

use crate::role::Role;
use crate::{Error, Result};
use serde::Serialize;

/// A capability in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See the organisation at all (every role but Disabled).
    OrgView,
    ChatUse,
    KnowledgeRead,
    KnowledgeWrite,
    ConversationsRead,
    ConversationsReply,
    ApprovalsRead,
    ApprovalsDecide,
    AgentsManage,
    AutomationsManage,
    IntegrationsManage,
    ApiKeysManage,
    MembersRead,
    MembersManage,
    AuditRead,
    OrgSettings,
    /// Transfer ownership, delete the organisation, create organisations (in the default org).
    OrgOwnership,
}

use Role::{Admin as A, Developer as D, Editor as E, Member as M, Owner as O};

/// Which roles hold each permission. Disabled holds none.
pub const MATRIX: &[(Permission, &[Role])] = &[
    (Permission::OrgView, &[M, E, D, A, O]),
    (Permission::ChatUse, &[M, E, D, A, O]),
    (Permission::KnowledgeRead, &[M, E, D, A, O]),
    (Permission::KnowledgeWrite, &[E, D, A, O]),
    (Permission::ConversationsRead, &[M, E, D, A, O]),
    (Permission::ConversationsReply, &[E, D, A, O]),
    (Permission::ApprovalsRead, &[M, E, D, A, O]),
    (Permission::ApprovalsDecide, &[E, D, A, O]),
    (Permission::AgentsManage, &[E, D, A, O]),
    (Permission::AutomationsManage, &[D, A, O]),
    (Permission::IntegrationsManage, &[D, A, O]),
    (Permission::ApiKeysManage, &[D, A, O]),
    (Permission::MembersRead, &[A, O]),
    (Permission::MembersManage, &[A, O]),
    (Permission::AuditRead, &[A, O]),
    (Permission::OrgSettings, &[A, O]),
    (Permission::OrgOwnership, &[O]),
];

impl Permission {
    pub fn allows(self, role: Role) -> bool {
        MATRIX
            .iter()
            .find(|(p, _)| *p == self)
            .is_some_and(|(_, roles)| roles.contains(&role))
    }
}

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in account.
    SignedIn,
    /// A permission in the organisation named by the route's `{org}` segment.
    Org(Permission),
    /// A permission in the default organisation, for instance-wide actions.
    Instance(Permission),
    /// A permission in the caller's organisation, named by `X-Organization-Slug`, else the API
    /// key's organisation, else the caller's only organisation (the OpenAI-compatible API).
    Caller(Permission),
}

/// Proof that `user_id` holds `permission` in `org_id`. Only [`Grant::check`] makes one.
#[derive(Debug, Clone)]
pub struct Grant {
    pub org_id: String,
    pub org_slug: String,
    pub user_id: String,
    pub role: Role,
    permission: Permission,
}

impl Grant {
    /// Checks the matrix and returns the proof, or `InsufficientRole`.
    pub fn check(
        permission: Permission,
        org_id: &str,
        org_slug: &str,
        user_id: &str,
        role: Role,
    ) -> Result<Grant> {
        if permission.allows(role) {
            Ok(Grant {
                org_id: org_id.to_owned(),
                org_slug: org_slug.to_owned(),
                user_id: user_id.to_owned(),
                role,
                permission,
            })
        } else {
            Err(Error::InsufficientRole)
        }
    }

    pub fn permission(&self) -> Permission {
        self.permission
    }

    /// Services call this to make sure the grant they were handed covers what they do.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.permission == permission || permission.allows(self.role) {
            Ok(())
        } else {
            Err(Error::InsufficientRole)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_holds_nothing_and_owner_everything() {
        for (p, roles) in MATRIX {
            assert!(!roles.contains(&Role::Disabled), "{p:?}");
            assert!(p.allows(Role::Owner), "{p:?}");
        }
    }

    #[test]
    fn matrix_matches_reference_rows() {
        assert!(Permission::KnowledgeRead.allows(Role::Member));
        assert!(!Permission::KnowledgeWrite.allows(Role::Member));
        assert!(Permission::AgentsManage.allows(Role::Editor));
        assert!(!Permission::ApiKeysManage.allows(Role::Editor));
        assert!(Permission::ApiKeysManage.allows(Role::Developer));
        assert!(!Permission::AuditRead.allows(Role::Developer));
        assert!(Permission::AuditRead.allows(Role::Admin));
        assert!(!Permission::OrgOwnership.allows(Role::Admin));
    }
}
