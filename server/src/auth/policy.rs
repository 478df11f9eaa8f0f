//! Authorization: the one place the domain asks what a viewer may do, following the
//! matrix in schema.graphql (owner, moderator, admin, author, banned user).

use super::Viewer;

/// What a channel tells about its people.
pub trait ChannelRoles {
    /// The owner's user id.
    fn owner_id(&self) -> &str;
    /// Whether `user_id` moderates the channel.
    fn is_moderator(&self, user_id: &str) -> bool;
    /// Whether `user_id` is banned from the channel now.
    fn is_banned(&self, user_id: &str) -> bool;
}

/// An action on a channel (or, for the profile, on the viewer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// `updateProfile`: the viewer's own profile.
    UpdateProfile,
    /// `updateChannel`, `startStream`, `endStream`: the channel must be the viewer's.
    ManageChannel,
    /// `follow`, `unfollow`.
    Follow,
    /// `sendChatMessage`.
    SendChat,
    /// `deleteChatMessage` of a message by `author_id`.
    DeleteMessage {
        /// The message's author.
        author_id: &'a str,
    },
    /// `banUser` of `target_id`.
    Ban {
        /// The user to ban.
        target_id: &'a str,
    },
    /// `unbanUser`.
    Unban,
    /// `addModerator`, `removeModerator`.
    ManageModerators,
}

/// Why an action is refused; maps to `UNAUTHENTICATED` and `FORBIDDEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The action needs a signed-in viewer.
    #[error("sign in to do this")]
    Unauthenticated,
    /// The viewer may not do this here.
    #[error("{0}")]
    Forbidden(&'static str),
}

/// Whether `viewer` may do `action` on `channel`.
pub fn can(
    viewer: Option<&Viewer>,
    action: Action<'_>,
    channel: &impl ChannelRoles,
) -> Result<(), Denied> {
    let v = viewer.ok_or(Denied::Unauthenticated)?;
    let id = &*v.id;
    let owner = channel.owner_id() == id;
    let moderator = channel.is_moderator(id);
    let staff = owner || moderator || v.admin;
    match action {
        Action::UpdateProfile | Action::Follow => Ok(()),
        Action::ManageChannel if owner => Ok(()),
        Action::ManageChannel => Err(Denied::Forbidden("only the channel's owner can change it")),
        Action::SendChat if channel.is_banned(id) => {
            Err(Denied::Forbidden("you are banned from this channel's chat"))
        }
        Action::SendChat => Ok(()),
        Action::DeleteMessage { author_id } if staff || author_id == id => Ok(()),
        Action::DeleteMessage { .. } => Err(Denied::Forbidden(
            "only the author, the channel's owner and moderators, and admins can delete a message",
        )),
        Action::Ban { target_id } => {
            if !staff {
                Err(Denied::Forbidden(
                    "only the channel's owner and moderators, and admins can ban",
                ))
            } else if target_id == channel.owner_id() {
                Err(Denied::Forbidden("the channel's owner cannot be banned"))
            } else if channel.is_moderator(target_id) && !(owner || v.admin) {
                Err(Denied::Forbidden(
                    "only the owner or an admin can ban a moderator",
                ))
            } else {
                Ok(())
            }
        }
        Action::Unban if staff => Ok(()),
        Action::Unban => Err(Denied::Forbidden(
            "only the channel's owner and moderators, and admins can unban",
        )),
        Action::ManageModerators if owner || v.admin => Ok(()),
        Action::ManageModerators => Err(Denied::Forbidden(
            "only the channel's owner and admins can change moderators",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    struct Channel;

    impl ChannelRoles for Channel {
        fn owner_id(&self) -> &str {
            "owner"
        }
        fn is_moderator(&self, user_id: &str) -> bool {
            matches!(user_id, "mod" | "mod2")
        }
        fn is_banned(&self, user_id: &str) -> bool {
            user_id == "banned"
        }
    }

    fn viewer(id: &str, admin: bool) -> Viewer {
        Viewer {
            id: Rc::from(id),
            login: Rc::from(id),
            admin,
        }
    }

    /// The whole matrix: every kind of viewer against every action.
    #[test]
    fn the_matrix() {
        use Action::*;
        let people: [(&str, Option<Viewer>); 7] = [
            ("anonymous", None),
            ("viewer", Some(viewer("someone", false))),
            ("author", Some(viewer("author", false))),
            ("banned", Some(viewer("banned", false))),
            ("moderator", Some(viewer("mod", false))),
            ("owner", Some(viewer("owner", false))),
            ("admin", Some(viewer("admin", true))),
        ];
        let actions: [(&str, Action<'_>); 10] = [
            ("updateProfile", UpdateProfile),
            ("manageChannel", ManageChannel),
            ("follow", Follow),
            ("sendChat", SendChat),
            (
                "deleteOwnOrOthers",
                DeleteMessage {
                    author_id: "author",
                },
            ),
            (
                "banViewer",
                Ban {
                    target_id: "someone",
                },
            ),
            ("banModerator", Ban { target_id: "mod2" }),
            ("banOwner", Ban { target_id: "owner" }),
            ("unban", Unban),
            ("moderators", ManageModerators),
        ];
        // Columns follow `people`: anonymous, viewer, author, banned, moderator, owner, admin.
        let expected: [(&str, [bool; 7]); 10] = [
            ("updateProfile", [false, true, true, true, true, true, true]),
            (
                "manageChannel",
                [false, false, false, false, false, true, false],
            ),
            ("follow", [false, true, true, true, true, true, true]),
            ("sendChat", [false, true, true, false, true, true, true]),
            (
                "deleteOwnOrOthers",
                [false, false, true, false, true, true, true],
            ),
            ("banViewer", [false, false, false, false, true, true, true]),
            (
                "banModerator",
                [false, false, false, false, false, true, true],
            ),
            (
                "banOwner",
                [false, false, false, false, false, false, false],
            ),
            ("unban", [false, false, false, false, true, true, true]),
            (
                "moderators",
                [false, false, false, false, false, true, true],
            ),
        ];
        for ((name, action), (row_name, row)) in actions.iter().zip(expected.iter()) {
            assert_eq!(name, row_name);
            for ((who, v), allowed) in people.iter().zip(row.iter()) {
                let got = can(v.as_ref(), *action, &Channel);
                assert_eq!(got.is_ok(), *allowed, "{who} {name}: {got:?}");
                if v.is_none() {
                    assert_eq!(got, Err(Denied::Unauthenticated), "{who} {name}");
                } else if !allowed {
                    assert!(matches!(got, Err(Denied::Forbidden(_))), "{who} {name}");
                }
            }
        }
    }
}
