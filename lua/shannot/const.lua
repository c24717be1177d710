-- Names shared with the C host (src/shannot.h, spelled alike) and the exit
-- codes of the command-line contract (DESIGN.md §7).
return {
  VERSION = "0.1.0",
  EXIT = {
    OK = 0,
    FAILED = 1,      -- the sandboxed command failed; its code is shown
    USAGE = 2,       -- usage or bad input: one line naming the thing
    REFUSED = 3,     -- expired, drift, conflict, denied, host key
    ENV = 4,         -- environment: bwrap missing, not Linux, ...
    CHANGES = 10,    -- run --exit-code: the command succeeded and a session was made
    INTERNAL = 70,   -- a bug in shannot: reported with a traceback
  },
  PROCESS_MT = "shannot.proc.Process",
  TERM_RAW_MT = "shannot.term.Raw",
  TAR_READER_MT = "shannot.tar.Reader",
  SSH_SESSION_MT = "shannot.ssh.Session",
  SSH_SFTP_MT = "shannot.ssh.Sftp",
  SSH_CHANNEL_MT = "shannot.ssh.Channel",
  SSH_SFTPFILE_MT = "shannot.ssh.SftpFile",
  FILE_MT = "shannot.fs.File",
  SANDBOX_ENTER = "__sandbox-enter",  -- argv[1] of the sandbox's first program
}
