//! The membership rules of TALE-COMPAT §4 as pure functions over an organisation's roles.
//!
//! Stores call [`plan`] inside the transaction that applies its result, so two concurrent changes
//! cannot both pass the two-Admin check.

use crate::role::Role;
use crate::{Error, Result};
use serde_json::{json, Value};

/// A requested change to who holds which role.
#[derive(Debug, Clone)]
pub enum RoleRequest {
    /// `actor` is the member making the change (`None` for the operator CLI).
    Set { actor: Option<String>, target: String, role: Role },
    Remove { actor: Option<String>, target: String },
    /// Only the current Owner (or the operator CLI) can transfer.
    Transfer { actor: Option<String>, target: String },
}

/// One member's role moving from `from` to `to` (`None`: removed from the organisation).
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub user_id: String,
    pub from: Role,
    pub to: Option<Role>,
}

const TWO_ADMINS: &str = "at least two Admins (the Owner counts as one) must remain in the organisation";

/// Decides what a request changes, or why it is refused. `members` is every (user id, role).
pub fn plan(members: &[(String, Role)], request: &RoleRequest) -> Result<Vec<Assignment>> {
    let role_of = |id: &str| members.iter().find(|(u, _)| u == id).map(|(_, r)| *r);
    let owner = members.iter().find(|(_, r)| *r == Role::Owner).map(|(u, _)| u.clone());
    // The actor's own role is re-read here, inside the transaction: an Admin demoted a moment
    // ago cannot still change others.
    if let RoleRequest::Set { actor: Some(a), .. } | RoleRequest::Remove { actor: Some(a), .. } = request
        && !role_of(a).is_some_and(Role::is_admin) {
            return Err(Error::InsufficientRole);
        }
    let changes = match request {
        RoleRequest::Set { actor, target, role } => {
            let from = role_of(target).ok_or(Error::NotFound("member"))?;
            if actor.as_deref() == Some(target.as_str()) {
                return Err(Error::rule("you cannot change your own role"));
            }
            if from == *role {
                return Ok(Vec::new());
            }
            if from == Role::Owner {
                return Err(Error::rule("the Owner's role changes only by transferring ownership to another member"));
            }
            if *role == Role::Owner {
                if actor.is_some() {
                    return Err(Error::rule("to make someone Owner, the Owner transfers ownership"));
                }
                return plan(members, &RoleRequest::Transfer { actor: None, target: target.clone() });
            }
            vec![Assignment { user_id: target.clone(), from, to: Some(*role) }]
        }
        RoleRequest::Remove { actor, target } => {
            let from = role_of(target).ok_or(Error::NotFound("member"))?;
            if actor.as_deref() == Some(target.as_str()) {
                return Err(Error::rule("you cannot remove yourself from the organisation"));
            }
            if from == Role::Owner {
                return Err(Error::rule("the Owner cannot be removed; transfer ownership first"));
            }
            vec![Assignment { user_id: target.clone(), from, to: None }]
        }
        RoleRequest::Transfer { actor, target } => {
            let to_role = role_of(target).ok_or(Error::NotFound("member"))?;
            if let Some(actor) = actor
                && owner.as_deref() != Some(actor.as_str()) {
                    return Err(Error::InsufficientRole);
                }
            if to_role == Role::Owner {
                return Ok(Vec::new());
            }
            if to_role == Role::Disabled {
                return Err(Error::rule("ownership cannot go to a disabled member"));
            }
            let mut out = vec![Assignment { user_id: target.clone(), from: to_role, to: Some(Role::Owner) }];
            if let Some(previous) = owner {
                out.push(Assignment { user_id: previous, from: Role::Owner, to: Some(Role::Admin) });
            }
            out
        }
    };
    let admins_before = members.iter().filter(|(_, r)| r.is_admin()).count();
    let admins_after = members
        .iter()
        .filter(|(u, r)| match changes.iter().find(|c| &c.user_id == u) {
            Some(c) => c.to.is_some_and(Role::is_admin),
            None => r.is_admin(),
        })
        .count();
    if admins_after < admins_before && admins_after < 2 {
        return Err(Error::rule(TWO_ADMINS));
    }
    Ok(changes)
}

/// Before/after states for the audit log.
pub fn audit_states(changes: &[Assignment]) -> (Value, Value) {
    let before: serde_json::Map<String, Value> =
        changes.iter().map(|c| (c.user_id.clone(), json!(c.from.as_str()))).collect();
    let after: serde_json::Map<String, Value> = changes
        .iter()
        .map(|c| (c.user_id.clone(), c.to.map_or(Value::Null, |r| json!(r.as_str()))))
        .collect();
    (json!({ "roles": before }), json!({ "roles": after }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    fn org(roles: &[(&str, Role)]) -> Vec<(String, Role)> {
        roles.iter().map(|(u, r)| (u.to_string(), *r)).collect()
    }
    fn set(actor: &str, target: &str, role: Role) -> RoleRequest {
        RoleRequest::Set { actor: Some(actor.into()), target: target.into(), role }
    }

    #[test]
    fn owner_plus_one_admin_is_the_minimum() {
        let m = org(&[("o", Owner), ("a", Admin), ("e", Editor)]);
        let err = plan(&m, &set("o", "a", Member)).unwrap_err();
        assert!(err.to_string().contains("two Admins"));
        let m = org(&[("o", Owner), ("a", Admin), ("b", Admin)]);
        assert_eq!(plan(&m, &set("o", "a", Member)).unwrap().len(), 1);
        // Promotions are always fine, even below the minimum.
        let m = org(&[("o", Owner), ("e", Editor)]);
        assert!(plan(&m, &set("o", "e", Developer)).is_ok());
    }

    #[test]
    fn own_role_owner_role_and_removal_rules() {
        let m = org(&[("o", Owner), ("a", Admin), ("b", Admin), ("e", Editor)]);
        assert!(plan(&m, &set("a", "a", Member)).unwrap_err().to_string().contains("own role"));
        assert!(plan(&m, &set("a", "o", Admin)).unwrap_err().to_string().contains("transferring"));
        assert!(plan(&m, &set("a", "e", Owner)).is_err());
        let rm = RoleRequest::Remove { actor: Some("a".into()), target: "o".into() };
        assert!(plan(&m, &rm).is_err());
        let rm = RoleRequest::Remove { actor: Some("a".into()), target: "e".into() };
        assert_eq!(plan(&m, &rm).unwrap(), vec![Assignment { user_id: "e".into(), from: Editor, to: None }]);
    }

    #[test]
    fn an_actor_who_lost_admin_meanwhile_is_refused() {
        let m = org(&[("o", Owner), ("a", Member), ("b", Admin), ("c", Admin), ("e", Editor)]);
        assert!(matches!(plan(&m, &set("a", "e", Member)), Err(Error::InsufficientRole)));
        assert!(plan(&m, &set("b", "e", Member)).is_ok());
    }

    #[test]
    fn transfer_demotes_previous_owner_to_admin() {
        let m = org(&[("o", Owner), ("e", Editor)]);
        let t = RoleRequest::Transfer { actor: Some("o".into()), target: "e".into() };
        let c = plan(&m, &t).unwrap();
        assert_eq!(c[0].to, Some(Owner));
        assert_eq!(c[1], Assignment { user_id: "o".into(), from: Owner, to: Some(Admin) });
        let t = RoleRequest::Transfer { actor: Some("e".into()), target: "e".into() };
        assert!(matches!(plan(&m, &t), Err(Error::InsufficientRole)));
    }
}
