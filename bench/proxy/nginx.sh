# Sourced by the proxy benchmarks: the fast app, nginx with one worker serving a 6-byte file.
# write_nginx DIR PORT: writes DIR/nginx.conf (pid, logs and temp files under DIR), DIR/www.
write_nginx() {
  local dir=$1 port=$2
  mkdir -p "$dir/www" "$dir/nginx"
  printf 'hello\n' >"$dir/www/index.html"
  cat >"$dir/nginx.conf" <<CFG
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $dir/nginx; proxy_temp_path $dir/nginx; fastcgi_temp_path $dir/nginx; uwsgi_temp_path $dir/nginx; scgi_temp_path $dir/nginx;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; root $dir/www; }
}
CFG
}

# bench_tmp PREFIX: a private temp dir in $TMP (readable by nginx's workers), removed at exit
# after every pid in PIDS is sent TERM.
bench_tmp() {
  TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$TMP"
  PIDS=()
  trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s).
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
