-- Questions a script asks the running system (`systemctl is-active x`,
-- `service x status`, `invoke-rc.d --query x start`) get the host's true
-- answer during a capture: the shim inside the sandbox hands the command
-- line to a small server outside it (the SERVER perl script below, here
-- or on the remote), which runs it on the host only when it is one of
-- these read-only forms, hands back its output and exit status, and
-- records question and answer where the sandbox cannot write.  No socket
-- of the host's (D-Bus, systemd's) is ever inside.  Each answer becomes
-- an operation `query` of the session; execute asks it again first, and
-- a different answer is drift.
local bwrap = require("shannot.sandbox.bwrap")

local M = {}

-- systemctl verbs whose answer is the running manager's state.  The file
-- queries (is-enabled, cat, get-default, list-unit-files) run offline in
-- the sandbox instead (staging.lua): they see the script's own enables.
M.SYSTEMCTL_VERBS = { "is-active", "is-failed", "is-system-running", "status", "show", "list-units",
  "list-timers", "list-sockets", "list-jobs" }

-- The longest a question may take, then and at execute.
M.TIMEOUT = 30

-- Verbs whose whole output is the answer; of the others (status, show,
-- list-*: times, PIDs, memory) only the exit status is compared.
M.STABLE_VERBS = { ["is-active"] = true, ["is-failed"] = true, ["is-system-running"] = true }

-- Where the sandbox reaches the server: a directory bound read-write
-- (the staging's defer/q), holding the request FIFO `ask`.
M.DIR_INSIDE = bwrap.QUERIES

-- The server: reads "q.PID\n" names from DIR/ask, the request from
-- DIR/q.PID.req (NUL-separated argv), answers into DIR/q.PID.out, .err,
-- .code (new files, never through a symlink), wakes the asker through
-- its FIFO DIR/q.PID, and appends each question and answer to LOG.  It
-- ends when its parent does (the run's process: the sandbox is over),
-- named by its pid in the first argument: a run over before perl has
-- started would otherwise leave it the child of init, waiting for good.
M.SERVER = [==[
use strict; use Fcntl; use POSIX ();
my ($parent, $dir, $log, @verbs) = @ARGV;
my %verb = map { $_ => 1 } @verbs;
exit 0 if getppid() != $parent;
$ENV{PATH} = "/usr/sbin:/usr/bin:/sbin:/bin"; $ENV{SYSTEMD_PAGER} = ""; $ENV{PAGER} = "cat";
$ENV{SYSTEMD_COLORS} = "0"; delete $ENV{DBUS_SESSION_BUS_ADDRESS};
sysopen(my $ask, "$dir/ask", O_RDWR) or die "$dir/ask: $!\n";
my $max = 1 << 20;
sub slurp { my ($p, $limit) = @_; my $d = "";
  sysopen(my $f, $p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) or return undef;
  my @s = stat($f); return undef unless -f _ && $s[7] <= $limit;
  while (length($d) < $limit) { my $n = sysread($f, $d, 65536, length $d); last unless $n }
  return $d; }
sub put { my ($p, $d) = @_;
  sysopen(my $f, $p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644) or return 0;
  syswrite($f, $d); close($f); return 1; }
# a question shannot asks the host: these verbs, these options exactly
# (no value in a separate word, none bundled or abbreviated), unit names
# (the same rules as allowed() in queries.lua)
my %flag = map { $_ => 1 } qw(-q --quiet --no-pager -a --all --full -l --plain --no-legend --value);
sub allowed { my @a = @_; my $cmd = shift(@a) // ""; $cmd =~ s{.*/}{};
  if ($cmd eq "systemctl") {
    my @words;
    for (@a) {
      if (/\A-/) { next if $flag{$_} || /\A--(?:property|type|state)=[A-Za-z0-9,_-]+\z/ || /\A--lines=[0-9]{1,6}\z/;
        return 0 }
      return 0 unless /\A[A-Za-z0-9@._:*\\-]{1,256}\z/;
      push @words, $_ }
    return @words && $verb{$words[0]} ? 1 : 0 }
  my $name = qr/\A[A-Za-z0-9_][A-Za-z0-9@._:-]{0,255}\z/;
  return 1 if $cmd eq "service" && @a == 2 && $a[0] =~ $name && $a[1] eq "status";
  return 1 if $cmd eq "invoke-rc.d" && @a == 3 && $a[0] eq "--query" && $a[1] =~ $name && $a[2] =~ /\A[a-z-]{1,32}\z/;
  return 0 }
sub run { my @argv = @_; my $tmp = "$log.run";
  my $pid = fork(); die "fork: $!\n" unless defined $pid;
  if ($pid == 0) {
    open(STDIN, "<", "/dev/null"); open(STDOUT, ">", "$tmp.out"); open(STDERR, ">", "$tmp.err");
    chdir("/"); exec { $argv[0] } @argv; exit 127 }
  my $until = time() + 30; my $done;
  while (time() < $until) { $done = waitpid($pid, POSIX::WNOHANG()); last if $done; select(undef, undef, undef, 0.005) }
  unless ($done) { kill("KILL", $pid); waitpid($pid, 0) }
  my $code = $? & 127 ? 128 + ($? & 127) : $? >> 8;
  my ($out, $err) = (slurp("$tmp.out", $max) // "", slurp("$tmp.err", $max) // "");
  unlink("$tmp.out", "$tmp.err");
  return ($code, $out, $err) }
sub answer { my $name = shift;
  my $req = slurp("$dir/$name.req", 65536); return unless defined $req;
  my @argv = split /\0/, $req, -1; pop @argv if @argv && $argv[-1] eq "";
  # not a question: "-", and the shim records the call as deferred instead
  my ($code, $out, $err) = ("-", "", "");
  if (@argv && allowed(@argv)) {
    my $cmd = $argv[0]; $cmd =~ s{.*/}{}; ($code, $out, $err) = run($cmd, @argv[1 .. $#argv]);
    # recorded before the asker sees it: no answer is used unrecorded
    open(my $l, ">>", $log) or die "$log: $!\n";
    print $l join("\0", "shannot-query", scalar(@argv), @argv, $code, length($out)), "\0", $out;
    close($l) or die "$log: $!\n" }
  put("$dir/$name.out", $out) && put("$dir/$name.err", $err) && put("$dir/$name.code", "$code\n") or return;
  sysopen(my $wake, "$dir/$name", O_WRONLY | O_NONBLOCK | O_NOFOLLOW) or return;
  syswrite($wake, "\n"); close($wake) }
my ($buf, $stop) = ("", 0);
$SIG{TERM} = sub { $stop = 1 };  # between two questions, never inside a record
while (!$stop) {
  my $in = ""; vec($in, fileno($ask), 1) = 1;
  my $ready = select(my $out = $in, undef, undef, 0.5);
  exit 0 if getppid() != $parent;
  next unless $ready > 0;
  my $n = sysread($ask, $buf, 4096, length $buf); next unless $n;
  while ($buf =~ s/\A([^\n]*)\n//) {
    my $name = $1; exit 0 if $name eq "stop"; answer($name) if $name =~ /\Aq\.\d{1,10}\z/ }
  $buf = "" if length($buf) > 4096; }
]==]

-- The shim's part (sh): hands "$shannot_cmd" "$@" to the server and
-- answers as the host did.  Defined as a function shannot_ask.
M.SHIM_FUNCTION = [[
shannot_ask() {
  shannot_q=]] .. M.DIR_INSIDE .. [[/q.$$
  rm -f "$shannot_q" "$shannot_q.req" "$shannot_q.out" "$shannot_q.err" "$shannot_q.code"
  mkfifo -m 600 "$shannot_q" || return 1
  { printf '%s\000' "${shannot_cmd##*/}"; for shannot_arg in "$@"; do printf '%s\000' "$shannot_arg"; done; } \
    > "$shannot_q.req"
  # open before asking (read-write: it never blocks, and the server's
  # wake-up, opened without blocking, always finds a reader)
  exec 3<> "$shannot_q"
  printf 'q.%s\n' "$$" > ]] .. M.DIR_INSIDE .. [[/ask
  if ! timeout 300 head -c 1 <&3 > /dev/null; then
    echo "shannot: the host did not answer: ${shannot_cmd##*/} $*" >&2
    rm -f "$shannot_q" "$shannot_q.req"
    exit 1
  fi
  exec 3<&-
  read -r shannot_code < "$shannot_q.code" || shannot_code=1
  if [ "$shannot_code" != - ]; then
    cat "$shannot_q.out" 2>/dev/null
    cat "$shannot_q.err" >&2 2>/dev/null
  fi
  rm -f "$shannot_q" "$shannot_q.req" "$shannot_q.out" "$shannot_q.err" "$shannot_q.code"
  [ "$shannot_code" = - ] && return 1  # not a question: recorded below
  exit "$shannot_code"
}
]]

-- The shim's dispatch (sh): which calls are questions.
M.SHIM_DISPATCH = [[
case "${shannot_cmd##*/}" in
  systemctl)
    shannot_verb=
    for shannot_arg in "$@"; do
      case "$shannot_arg" in -*) ;; *) shannot_verb=$shannot_arg; break ;; esac
    done
    case " ]] .. table.concat(M.SYSTEMCTL_VERBS, " ") .. [[ " in *" $shannot_verb "*) shannot_ask "$@" ;; esac ;;
  service) [ "$#" = 2 ] && [ "$2" = status ] && shannot_ask "$@" ;;
  invoke-rc.d) [ "$#" = 3 ] && [ "$1" = --query ] && shannot_ask "$@" ;;
esac
]]

-- asks(profile) -> whether a run under the profile may ask: one of the
-- commands with questions is deferred
function M.asks(p)
  for _, name in ipairs(p.defer or {}) do
    if name == "systemctl" or name == "service" or name == "invoke-rc.d" then return true end
  end
  return false
end

-- server_argv(staging dir, parent) -> the command line of the server for
-- a staging laid out as staging.lua makes it (defer/q, and the record
-- `queries` beside, where the sandbox cannot write); parent: the pid of
-- the process that starts it, whose end is the server's
function M.server_argv(dir, parent)
  local argv = { "perl", "-e", M.SERVER, tostring(parent), dir .. "/defer/q", dir .. "/queries" }
  table.move(M.SYSTEMCTL_VERBS, 1, #M.SYSTEMCTL_VERBS, #argv + 1, argv)
  return argv
end

-- serve(profile, staging dir) -> the questions' server | nil when the
-- profile asks nothing | nil, err.  It starts when the sandbox first asks:
-- server.wake is what communicate's `wake` takes, so a run that asks
-- nothing starts no perl (most runs: perl's start-up cost as much as the
-- rest of a capture's own work).  stop() ends it.
function M.serve(p, dir)
  if not M.asks(p) then return nil end
  local fs = require("shannot.fs")
  -- perl-base is essential on Debian: in its place whatever PATH says
  local perl = fs.which("perl", "/usr/bin:/bin:" .. (os.getenv("PATH") or ""))
  local argv = M.server_argv(dir, require("shannot.core.sys").ids(false).pid)
  argv[1] = perl or argv[1]
  -- Held open read-write until stop(): a question asked before the server
  -- runs waits in the FIFO, and the shim's open never waits for a reader.
  local ask, msg = fs.open(dir .. "/defer/q/ask", "rw")
  if not ask then return nil, require("shannot.err").env("the questions' channel: %s", msg) end
  local server = { ask = ask }
  server.wake = { fd = ask:fd(), fn = function()
    local proc, perr = require("shannot.proc").spawn(argv, { stdin = "null", stdout = "null", stderr = "null" })
    if not proc then return nil, "cannot start the questions' server (perl): " .. tostring(perr) end
    server.proc = proc
    return true
  end }
  return server
end

local FLAGS = { ["-q"] = true, ["--quiet"] = true, ["--no-pager"] = true, ["-a"] = true, ["--all"] = true,
  ["--full"] = true, ["-l"] = true, ["--plain"] = true, ["--no-legend"] = true, ["--value"] = true }
local VERBS = {}
for _, v in ipairs(M.SYSTEMCTL_VERBS) do VERBS[v] = true end

local function plain_option(a)
  return FLAGS[a] or a:match("^%-%-property=[%w,_%-]+$") or a:match("^%-%-type=[%w,_%-]+$")
    or a:match("^%-%-state=[%w,_%-]+$") or a:match("^%-%-lines=%d%d?%d?%d?%d?%d?$")
end

local function service_name(a)
  return #a <= 256 and a:match("^[%w_][%w@._:%-]*$") ~= nil
end

-- allowed(argv) -> whether argv is a question shannot asks the host: a
-- verb of SYSTEMCTL_VERBS with only the options above (each whole: none
-- takes its value in a separate word, none bundled or abbreviated) and
-- unit names; `service NAME status`; `invoke-rc.d --query NAME ACTION`.
-- The server outside the sandbox checks the same (SERVER's allowed).
function M.allowed(argv)
  if type(argv) ~= "table" or type(argv[1]) ~= "string" then return false end
  local cmd = argv[1]:match("[^/]*$")
  if cmd == "systemctl" then
    local words = {}
    for i = 2, #argv do
      local a = argv[i]
      if type(a) ~= "string" then return false end
      if a:sub(1, 1) == "-" then
        if not plain_option(a) then return false end
      elseif #a > 256 or not a:match("^[%w@._:*\\%-]+$") then
        return false
      else
        words[#words + 1] = a
      end
    end
    return words[1] ~= nil and VERBS[words[1]] == true
  elseif cmd == "service" then
    return #argv == 3 and type(argv[2]) == "string" and service_name(argv[2]) and argv[3] == "status"
  elseif cmd == "invoke-rc.d" then
    return #argv == 4 and argv[2] == "--query" and type(argv[3]) == "string" and service_name(argv[3])
      and type(argv[4]) == "string" and argv[4]:match("^[a-z%-]+$") ~= nil and #argv[4] <= 32
  end
  return false
end

-- stop(server): the server ended once the question it is answering, if
-- any, is recorded (TERM, then up to 5 s, then KILL)
function M.stop(server)
  local proc = server.proc
  if proc then
    proc:kill("TERM")
    for _ = 1, 5000 do
      if proc:poll() then break end
      require("shannot.core.sys").sleep(0.001)
    end
    proc:close()
  end
  server.ask:close()
end

-- read(file) -> {{argv, code, stdout}...} | nil, msg: the server's log
function M.read(file, max_bytes)
  local fs = require("shannot.fs")
  if not fs.lstat(file) then return {} end
  local data, rerr = fs.read_file(file, max_bytes or 64 * 1024 * 1024)
  if not data then return nil, "the record of questions: " .. tostring(rerr) end
  local out, pos = {}, 1
  local function field()
    local stop = data:find("\0", pos, true)
    if not stop then return nil end
    local v = data:sub(pos, stop - 1)
    pos = stop + 1
    return v
  end
  while pos <= #data do
    if field() ~= "shannot-query" then return nil, "the record of questions is malformed" end
    local argc = tonumber(field() or "")
    if not argc or argc < 1 or argc > 4096 then return nil, "the record of questions is malformed" end
    local argv = {}
    for i = 1, argc do
      argv[i] = field()
      if not argv[i] then return nil, "the record of questions is malformed" end
    end
    local code, len = math.tointeger(tonumber(field() or "")), math.tointeger(tonumber(field() or ""))
    if not code or not len or len < 0 or pos + len - 1 > #data then
      return nil, "the record of questions is malformed"
    end
    if not M.allowed(argv) then return nil, "the record of questions holds a command that is no question" end
    out[#out + 1] = { argv = argv, code = code, stdout = data:sub(pos, pos + len - 1) }
    pos = pos + len
  end
  return out
end

-- verb(argv) -> the systemctl verb of a question (nil for service and
-- invoke-rc.d)
function M.verb(argv)
  if argv[1] ~= "systemctl" then return nil end
  for i = 2, #argv do
    if argv[i]:sub(1, 1) ~= "-" then return argv[i] end
  end
end

-- same_answer(op, now) -> whether a question asked again (now: {code,
-- stdout}) got the answer op recorded: the exit status, and the output
-- where it is all of the answer (STABLE_VERBS; service's and
-- invoke-rc.d's: the status only)
function M.same_answer(op, now)
  if op.answer.code ~= now.code then return false end
  if not M.STABLE_VERBS[M.verb(op.argv) or ""] then return true end
  return require("shannot.store").hash_string(now.stdout or "") == op.answer.sha256
end

return M
