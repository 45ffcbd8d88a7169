//! Tests of `run`.

use super::*;

fn exit(code: Option<i32>, signal: Option<i32>) -> AppExit {
    AppExit {
        app: "app".into(),
        started: true,
        code,
        signal,
        backup_error: None,
    }
}

#[test]
fn the_exit_code_is_the_app_s() {
    assert_eq!(exit(Some(3), None).exit_code(), 3);
}

#[test]
fn a_signal_death_exits_with_128_plus_the_signal() {
    let term = exit(None, Some(15));
    assert_eq!(term.exit_code(), 143);
    assert_eq!(term.to_string(), "the app `app` ended: killed by SIGTERM");
}

#[test]
fn arguments_with_spaces_are_quoted_for_the_log() {
    let args: Vec<OsString> = ["sh", "-c", "echo it's; exit 7"]
        .into_iter()
        .map(OsString::from)
        .collect();
    assert_eq!(shell_words(&args), r"sh -c 'echo it'\''s; exit 7'");
}

#[test]
fn a_failed_final_sync_exits_1_even_when_the_app_exits_0() {
    let mut e = exit(Some(0), None);
    e.backup_error = Some("the final sync of the backup failed: boom".into());
    assert_eq!(e.exit_code(), 1);
    assert!(
        e.to_string()
            .ends_with("exit code 0; but the final sync of the backup failed: boom"),
        "{e}"
    );
}
