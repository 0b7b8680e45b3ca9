#pragma once
// A small HTTP/1.1 server and client over POSIX sockets, for examples/serve and its load generator
// (bench/serve_load.cpp). Requests carry a Content-Length body (no chunked transfer); connections are
// kept alive as HTTP/1.1 says; the server gives each connection a thread of its own, so a slow client
// holds up no one and request threads do their own work (image decoding) in parallel, and stop() lets
// requests in flight finish. Written for visopt because the GPU machine has no HTTP library, and because
// a pool of a few threads serving kept-alive connections one at a time (cpp-httplib's design) leaves
// all but that many clients waiting, which defeats dynamic batching.

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace http {

struct Request {
  std::string method, path, body;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string header(const std::string& lower_case_name) const {
    const auto it = headers.find(lower_case_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

inline const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

namespace detail {

inline std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

inline std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

/// Sends all of `data`; false when the peer has gone.
inline bool send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

/// Bytes read from a socket, kept across the messages of one kept-alive connection.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}
  /// The header block up to and without the blank line; false on end of stream, error or over `limit` bytes
  /// (then `too_large` is set).
  bool headers(std::string& out, std::size_t limit, bool& too_large) {
    too_large = false;
    for (;;) {
      if (const auto end = buffer_.find("\r\n\r\n"); end != std::string::npos) {
        out = buffer_.substr(0, end);
        buffer_.erase(0, end + 4);
        return true;
      }
      if (buffer_.size() > limit) {
        too_large = true;
        return false;
      }
      if (!fill()) return false;
    }
  }
  /// Exactly `length` bytes of body.
  bool body(std::string& out, std::size_t length) {
    while (buffer_.size() < length) {
      if (!fill()) return false;
    }
    out.assign(buffer_, 0, length);
    buffer_.erase(0, length);
    return true;
  }

 private:
  bool fill() {
    char chunk[65536];
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
  }
  int fd_;
  std::string buffer_;
};

/// Parses "Name: value" lines after a first line; false on a malformed line.
inline bool parse_header_lines(const std::string& block, std::string& first_line, std::map<std::string, std::string>& headers) {
  std::size_t at = block.find("\r\n");
  first_line = block.substr(0, at);
  while (at != std::string::npos) {
    const std::size_t start = at + 2;
    at = block.find("\r\n", start);
    const std::string line = block.substr(start, at == std::string::npos ? std::string::npos : at - start);
    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return false;
    headers[lower(line.substr(0, colon))] = trim(line.substr(colon + 1));
  }
  return true;
}

/// The Content-Length value: -1 when absent, -2 when malformed.
inline long long content_length(const std::map<std::string, std::string>& headers) {
  const auto it = headers.find("content-length");
  if (it == headers.end()) return -1;
  if (it->second.empty() || it->second.size() > 18 || it->second.find_first_not_of("0123456789") != std::string::npos) return -2;
  return std::stoll(it->second);
}

inline std::string serialize(const Response& r, bool keep_alive) {
  return "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\nContent-Type: " + r.content_type +
         "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\nConnection: " + (keep_alive ? "keep-alive" : "close") +
         "\r\n\r\n" + r.body;
}

}  // namespace detail

/// Handlers receive a parsed request and return the response; an exception becomes a 500 with its text.
using Handler = std::function<Response(const Request&)>;

struct ServerLimits {
  std::size_t max_body = std::size_t{64} << 20;
  std::size_t max_header = std::size_t{64} << 10;
  int max_connections = 4096;
  std::chrono::seconds idle{60};  // a kept-alive connection with nothing to say is closed after this
};

class Server {
 public:
  /// `error`: builds the response for a request that reached no handler, or that the server refused
  /// (status 400, 404, 405, 411, 413, 431), from the status and a sentence saying why.
  explicit Server(std::function<Response(int status, const std::string& why)> error, ServerLimits limits = {})
      : error_(std::move(error)), limits_(limits) {}
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() {
    stop();
    if (listener_ >= 0) ::close(listener_);
  }

  void handle(const std::string& method, const std::string& path, Handler handler) {
    routes_[{method, path}] = std::move(handler);
  }

  /// Listens on host:port (port 0: a free one); returns the port. Throws std::runtime_error.
  int bind(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
      throw std::runtime_error("http: cannot resolve '" + host + "': " + ::gai_strerror(rc));
    }
    std::string why = "no address";
    for (addrinfo* a = found; a != nullptr && listener_ < 0; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      const int on = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
      if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
        listener_ = fd;
      } else {
        why = std::strerror(errno);
        ::close(fd);
      }
    }
    ::freeaddrinfo(found);
    if (listener_ < 0) throw std::runtime_error("http: cannot listen on " + host + ":" + std::to_string(port) + ": " + why);
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &length);
    return ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }

  /// Accepts connections until stop(); returns once every connection has ended.
  void run() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
          if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(10));
          if (!stopping_.load()) continue;
        }
        break;  // stop() shut the listener down
      }
      {
        std::lock_guard lock(mutex_);
        if (stopping_.load() || static_cast<int>(connections_.size()) >= limits_.max_connections) {
          const bool busy = !stopping_.load();
          if (busy) detail::send_all(fd, detail::serialize(error_(503, "too many connections"), false));
          ::close(fd);
          continue;
        }
        connections_.insert(fd);
      }
      std::thread([this, fd] { serve_connection(fd); }).detach();
    }
    std::unique_lock lock(mutex_);
    ended_.wait(lock, [&] { return connections_.empty(); });
  }

  /// From any thread: no new connections; each open one ends after the request it is answering.
  void stop() {
    std::lock_guard lock(mutex_);
    if (stopping_.exchange(true)) return;
    if (listener_ >= 0) ::shutdown(listener_, SHUT_RDWR);
    for (const int fd : connections_) ::shutdown(fd, SHUT_RD);
  }

 private:
  void serve_connection(int fd) {
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    timeval idle{static_cast<time_t>(limits_.idle.count()), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
    detail::Reader reader(fd);
    for (bool keep_alive = true; keep_alive;) {
      std::string block;
      bool too_large = false;
      if (!reader.headers(block, limits_.max_header, too_large)) {
        if (too_large) detail::send_all(fd, detail::serialize(error_(431, "the request's headers exceed 64 KiB"), false));
        break;
      }
      Request request;
      std::string first_line;
      if (!detail::parse_header_lines(block, first_line, request.headers)) {
        detail::send_all(fd, detail::serialize(error_(400, "malformed header line"), false));
        break;
      }
      const auto space = first_line.find(' '), second = first_line.rfind(' ');
      if (space == std::string::npos || second == space) {
        detail::send_all(fd, detail::serialize(error_(400, "malformed request line"), false));
        break;
      }
      request.method = first_line.substr(0, space);
      request.path = first_line.substr(space + 1, second - space - 1);
      const std::string version = first_line.substr(second + 1);
      const std::string connection = detail::lower(request.header("connection"));
      keep_alive = version == "HTTP/1.1" ? connection != "close" : connection == "keep-alive";
      if (!request.header("transfer-encoding").empty()) {
        detail::send_all(fd, detail::serialize(error_(411, "send the body with a Content-Length, not chunked"), false));
        break;
      }
      const long long length = detail::content_length(request.headers);
      if (length == -2) {
        detail::send_all(fd, detail::serialize(error_(400, "malformed Content-Length"), false));
        break;
      }
      if (length > static_cast<long long>(limits_.max_body)) {
        detail::send_all(fd, detail::serialize(error_(413, "the body exceeds " + std::to_string(limits_.max_body >> 20) + " MiB"), false));
        break;
      }
      if (length > 0 && !reader.body(request.body, static_cast<std::size_t>(length))) break;
      if (!detail::send_all(fd, detail::serialize(respond(request), keep_alive))) break;
    }
    ::close(fd);
    std::lock_guard lock(mutex_);
    connections_.erase(fd);
    if (connections_.empty()) ended_.notify_all();
  }

  Response respond(const Request& request) {
    const auto it = routes_.find({request.method, request.path});
    if (it == routes_.end()) {
      const bool path_known = std::any_of(routes_.begin(), routes_.end(), [&](const auto& r) { return r.first.second == request.path; });
      return error_(path_known ? 405 : 404, "no handler for " + request.method + " " + request.path);
    }
    try {
      return it->second(request);
    } catch (const std::exception& e) {
      return error_(500, e.what());
    }
  }

  std::function<Response(int, const std::string&)> error_;
  ServerLimits limits_;
  std::map<std::pair<std::string, std::string>, Handler> routes_;  // (method, path); fixed before run()
  int listener_ = -1;
  std::mutex mutex_;
  std::condition_variable ended_;
  std::set<int> connections_;
  std::atomic<bool> stopping_{false};
};

/// One kept-alive connection to a server, for a client that sends requests one after another.
class Client {
 public:
  Client(const std::string& host, int port) : host_(host), port_(port) { connect(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }

  /// Sends a request and reads its response; reconnects once if the server closed the connection.
  /// Throws std::runtime_error when the server cannot be reached or answers nonsense.
  Response request(const std::string& method, const std::string& path, const std::string& body = {},
                   const std::string& content_type = "application/octet-stream") {
    const std::string message = method + " " + path + " HTTP/1.1\r\nHost: " + host_ + "\r\nContent-Type: " + content_type +
                                "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    for (int attempt = 0;; ++attempt) {
      Response response;
      if (detail::send_all(fd_, message) && read_response(response)) return response;
      if (attempt == 1) throw std::runtime_error("http: no answer from " + host_ + ":" + std::to_string(port_));
      connect();
    }
  }

 private:
  void connect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    reader_.reset();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &found) != 0) {
      throw std::runtime_error("http: cannot resolve '" + host_ + "'");
    }
    for (addrinfo* a = found; a != nullptr && fd_ < 0; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        fd_ = fd;
      } else {
        ::close(fd);
      }
    }
    ::freeaddrinfo(found);
    if (fd_ < 0) throw std::runtime_error("http: cannot connect to " + host_ + ":" + std::to_string(port_));
    const int on = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    reader_ = std::make_unique<detail::Reader>(fd_);
  }

  bool read_response(Response& response) {
    std::string block, first_line;
    bool too_large = false;
    std::map<std::string, std::string> headers;
    if (!reader_->headers(block, std::size_t{1} << 20, too_large) || !detail::parse_header_lines(block, first_line, headers)) return false;
    if (first_line.size() < 12 || !first_line.starts_with("HTTP/1.")) return false;
    response.status = std::atoi(first_line.c_str() + 9);
    response.content_type = headers["content-type"];
    const long long length = detail::content_length(headers);
    if (length < 0) return false;
    if (!reader_->body(response.body, static_cast<std::size_t>(length))) return false;
    if (detail::lower(headers["connection"]) == "close") connect();
    return true;
  }

  std::string host_;
  int port_;
  int fd_ = -1;
  std::unique_ptr<detail::Reader> reader_;
};

}  // namespace http
