//! Connection bounds: `gatelet/server.max_connections` is checked like every other setting.
//! What the cap does at run time (the excess waits in the kernel's backlog while established
//! connections keep being served, and is admitted one slot at a time) is tested in
//! tests/leaks.rs, against the real binary, by the listening socket's queue.

use std::io::Write;

#[test]
fn max_connections_is_checked() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatelet"))
        .args(["check", "-c", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(
                br#"{"version": 3, "extra_config": {"gatelet/server": {"max_connections": 0, "spare": 1}}, "endpoints": []}"#,
            )?;
            child.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("extra_config.gatelet/server.max_connections"), "{text}");
    assert!(text.contains("spare"), "{text}");
}
