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
