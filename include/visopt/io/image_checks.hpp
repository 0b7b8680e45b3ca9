#pragma once
// What visopt checks in an encoded image's bytes before a decoder sees them: the size its header claims
// (refused over io::max_image_side / max_image_pixels before anything is allocated), the formats passed
// on, and defects that made stb_image misbehave (found by tests/fuzz/fuzz_image, when stb decoded JPEG and
// PNG too). Every decoder of io/image.hpp (libjpeg, libpng, stb_image) gets only bytes these checks passed.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "preprocess.hpp"

namespace visopt::io::detail {

inline std::string image_error_prefix(std::string_view name) {
  return visopt::detail::concat("io: cannot read image '", name, "': ");
}

inline void require_sane_dimensions(std::string_view name, int width, int height) {
  require(width > 0 && height > 0, image_error_prefix(name), "its header claims ", width, "x", height, " pixels");
  require(width <= max_image_side && height <= max_image_side, image_error_prefix(name), "its header claims ", width,
          "x", height, " pixels; the largest side accepted is ", max_image_side);
  require(static_cast<std::int64_t>(width) * height <= max_image_pixels, image_error_prefix(name), "its header claims ",
          width, "x", height, " pixels; at most ", max_image_pixels, " pixels are accepted");
}

/// What a look at the raw bytes finds before stb sees them: the size a PNG or JPEG header claims, and a
/// defect that stb_image must not be given. Needed because
///  - only JPEG, PNG, BMP and GIF are passed on: stb_image 2.27 (Debian 12's libstb) reads past its
///    buffer on a 16-bit PGM (CVE-2021-42716, nothings/stb#1225), and the rarer formats add only risk;
///  - it writes past its Huffman tables when a JPEG table defines over 256 codes (nothings/stb#1289);
///  - stbi_info tries every format and, when all refuse, says only "unknown image type", hiding that
///    stb refused a PNG or JPEG for its size (over 2^30 decoded bytes).
struct HeaderFacts {
  std::optional<std::pair<int, int>> size;  // width, height
  std::string defect;                       // non-empty: refuse the image with this reason
};

/// A BMP's claimed size, and a defect when the file cannot hold its info header's fields or the pixel
/// rows its size needs: stb_image reads missing bytes as zeros, so a 61-byte file claiming 8197x11527
/// pixels, or a 30-byte one whose header stops before its compression field, took seconds to decode
/// (found by tests/fuzz/fuzz_image). Sizes over the limits are left to require_sane_dimensions, which
/// names them.
inline void inspect_bmp(std::span<const std::uint8_t> b, HeaderFacts& facts) {
  const auto le = [&](std::size_t i, int bytes) {
    std::uint32_t v = 0;
    for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | b[i + static_cast<std::size_t>(k)];
    return v;
  };
  const std::uint32_t header = b.size() >= 18 ? le(14, 4) : 0;
  const std::size_t fields_end = header == 12 ? 26 : 34;  // the info header's fields read below
  if (b.size() < fields_end) {
    facts.defect = visopt::detail::concat("a truncated BMP: the file has ", b.size(), " bytes, and its headers need ", fields_end);
    return;
  }
  const std::uint32_t offset = le(10, 4);
  std::int64_t width = 0, rows = 0;
  std::uint32_t bits = 0, compression = 0;
  if (header == 12) {  // OS/2 BITMAPCOREHEADER: unsigned 16-bit sides
    width = le(18, 2), rows = le(20, 2), bits = le(24, 2);
  } else {
    width = static_cast<std::int32_t>(le(18, 4));
    rows = static_cast<std::int32_t>(le(22, 4));
    rows = rows < 0 ? -rows : rows;  // negative: stored top-down
    bits = le(28, 2), compression = le(30, 4);
  }
  facts.size = std::pair{static_cast<int>(width), static_cast<int>(std::min<std::int64_t>(rows, INT32_MAX))};  // -INT32_MIN
  if (width <= 0 || rows <= 0 || width > max_image_side || rows > max_image_side) return;
  const bool uncompressed = compression == 0 || compression == 3 || compression == 6;  // RGB or bit fields
  if (!uncompressed || (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32)) return;
  // Rows are padded to 4 bytes, except perhaps the last; the pixels start at the offset, after the header at least.
  const std::int64_t row_bytes = (width * bits + 31) / 32 * 4, last_row = (width * bits + 7) / 8;
  const std::int64_t start = std::max<std::int64_t>(offset, 14 + static_cast<std::int64_t>(header));
  const std::int64_t needed = row_bytes * (rows - 1) + last_row;
  if (start + needed > static_cast<std::int64_t>(b.size())) {
    facts.defect = visopt::detail::concat("a truncated BMP: its header claims ", width, "x", rows, " pixels of ", bits,
                                          " bits, ", needed, " bytes of pixels from byte ", start, ", and the file has ",
                                          b.size(), " bytes");
  }
}

inline HeaderFacts inspect_header(std::span<const std::uint8_t> b) {
  HeaderFacts facts;
  const auto be16 = [&](std::size_t i) { return static_cast<std::size_t>((b[i] << 8) | b[i + 1]); };
  const auto be31 = [&](std::size_t i) {  // PNG limits both sides to 2^31 - 1
    return static_cast<int>((static_cast<std::uint32_t>(b[i] & 0x7f) << 24) |
                            (static_cast<std::uint32_t>(b[i + 1]) << 16) | (static_cast<std::uint32_t>(b[i + 2]) << 8) |
                            b[i + 3]);
  };
  static constexpr std::uint8_t png_start[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                               0,    0,   0,   13,  'I',  'H',  'D',  'R'};
  if (b.size() >= 8 && std::equal(std::begin(png_start), std::begin(png_start) + 8, b.begin())) {
    if (b.size() >= 24 && std::equal(std::begin(png_start), std::end(png_start), b.begin())) {
      facts.size = std::pair{be31(16), be31(20)};
    }
    return facts;
  }
  const bool bmp = b.size() >= 2 && b[0] == 'B' && b[1] == 'M';
  const bool gif = b.size() >= 4 && b[0] == 'G' && b[1] == 'I' && b[2] == 'F' && b[3] == '8';
  if (bmp) inspect_bmp(b, facts);
  if (bmp || gif) return facts;
  // stb takes any run of 0xff and then 0xd8 (start of image) for a JPEG.
  std::size_t i = 0;
  while (i < b.size() && b[i] == 0xff) ++i;
  if (i == 0 || i >= b.size() || b[i] != 0xd8) {
    facts.defect = "not a JPEG, PNG, BMP or GIF image";
    return facts;
  }
  // Walk every marker segment, stepping over the entropy-coded data between them byte by byte, as stb does.
  // stb reads 0 past the end of the data; so does byte_at.
  const auto byte_at = [&](std::size_t k) -> std::size_t { return k < b.size() ? b[k] : 0; };
  // stb (2.27) does not clear its decoder state, so a scan that uses a Huffman or quantization table no
  // segment defined decodes with leftover heap bytes (an out-of-bounds table index, found by
  // tests/fuzz/fuzz_image). Valid JPEGs define every table before the scan that uses it.
  bool huffman_defined[2][4] = {}, quantization_defined[4] = {}, progressive = false;
  std::vector<std::pair<std::size_t, std::size_t>> frame_components;  // (id, quantization table)
  for (++i; i + 1 < b.size();) {
    const std::uint8_t marker = b[i + 1];
    if (b[i] != 0xff || marker == 0xff) {  // scan data, junk or a fill byte
      ++i;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length field
      i += 2;
      continue;
    }
    if (marker == 0xd9 || i + 4 > b.size()) break;  // end of image
    const bool frame = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (frame) {  // length, precision, height, width, component count, then (id, sampling, table) each
      if (!facts.size && i + 9 <= b.size()) facts.size = std::pair{static_cast<int>(be16(i + 7)), static_cast<int>(be16(i + 5))};
      progressive = marker == 0xc2;
      frame_components.clear();
      for (std::size_t c = 0, n = byte_at(i + 9); c < n; ++c) {
        frame_components.emplace_back(byte_at(i + 10 + 3 * c), byte_at(i + 12 + 3 * c));
      }
    }
    if (marker == 0xdb) {  // define quantization tables: a precision/id byte, then 64 values of 1 or 2 bytes
      auto left = static_cast<std::ptrdiff_t>(be16(i + 2)) - 2;
      for (std::size_t t = i + 4; left > 0;) {
        const std::size_t precision = byte_at(t) >> 4, id = byte_at(t) & 15;
        if (precision > 1 || id > 3) break;  // stb refuses the segment
        quantization_defined[id] = true;
        const std::size_t size = 1 + 64 * (precision + 1);
        t += size;
        left -= static_cast<std::ptrdiff_t>(size);
      }
    }
    if (marker == 0xda) {  // start of scan: component count, then (component id, DC table << 4 | AC table) each
      const std::size_t n = byte_at(i + 4), ss = byte_at(i + 5 + 2 * n), ah = byte_at(i + 7 + 2 * n) >> 4;
      for (std::size_t c = 0; c < n; ++c) {
        const std::size_t id = byte_at(i + 5 + 2 * c), dc = byte_at(i + 6 + 2 * c) >> 4, ac = byte_at(i + 6 + 2 * c) & 15;
        if (dc > 3 || ac > 3) break;  // stb refuses the scan
        // Baseline decodes both tables of every block; a progressive DC scan only the DC table on its first
        // pass, an AC scan only the AC table.
        const bool uses_dc = !progressive || (ss == 0 && ah == 0), uses_ac = !progressive || ss > 0;
        const char* missing = uses_dc && !huffman_defined[0][dc] ? "DC" : uses_ac && !huffman_defined[1][ac] ? "AC" : nullptr;
        if (missing) {
          facts.defect = visopt::detail::concat("corrupt JPEG: a scan uses ", missing, " Huffman table ",
                                                missing[0] == 'D' ? dc : ac, ", which no DHT segment before it defines");
          return facts;
        }
        for (const auto& [component, table] : frame_components) {
          if (component == id && table <= 3 && !quantization_defined[table]) {
            facts.defect = visopt::detail::concat("corrupt JPEG: a scan uses quantization table ", table,
                                                  ", which no DQT segment before it defines");
            return facts;
          }
        }
      }
    }
    if (marker == 0xc4) {  // define Huffman tables: each is a class/id byte, 16 code counts, the codes
      // Read the tables exactly as stb does: while the segment's length has bytes left, even when a
      // table's codes run past the segment's end, and reading 0 past the end of the data. (Stopping at
      // the segment's end let a table that straddles it through to stb: found by tests/fuzz/fuzz_image.)
      auto left = static_cast<std::ptrdiff_t>(be16(i + 2)) - 2;
      std::size_t t = i + 4;
      while (left > 0) {
        if ((byte_at(t) >> 4) > 1 || (byte_at(t) & 15) > 3) break;  // stb refuses the table's class or id
        std::size_t codes = 0;
        for (std::size_t k = 1; k <= 16; ++k) codes += byte_at(t + k);
        if (codes > 256) {
          facts.defect = visopt::detail::concat("corrupt JPEG: a Huffman table defines ", codes,
                                                " codes, at most 256 are possible");
          return facts;
        }
        huffman_defined[byte_at(t) >> 4][byte_at(t) & 15] = true;
        t += 17 + codes;
        left -= static_cast<std::ptrdiff_t>(17 + codes);
      }
      if (left != 0) break;  // stb refuses this segment and reads nothing after it
    }
    i += 2 + be16(i + 2);
  }
  return facts;
}

/// What the PNG chunk walk before stb_image found: stb trusts each chunk's length field, so visopt checks
/// the IDAT chunks (the ones it copies into memory) first.
struct PngChunkCheck {
  std::string defect;                               // non-empty: refuse the image with this reason
  std::optional<std::vector<std::uint8_t>> repaired;  // the PNG without its zero-length IDAT chunks, if it had any
};

/// Walks a PNG's chunks (nothing to report for other formats):
/// - An IDAT chunk that declares more data than the file has left is refused: stb grows its data buffer
///   to the declared length before reading, so a 60-byte file declaring 1 GiB made it allocate 2 GiB
///   (found by tests/fuzz/fuzz_image).
/// - Zero-length IDAT chunks are left out: for a zero-length first IDAT stb's data buffer is still null
///   and memcpy(nullptr, data, 0) is undefined behaviour (found by fuzz_image under UBSan). stb makes
///   that copy as soon as it has read the chunk's length and type, so a chunk whose CRC is cut off goes
///   too. Such a chunk carries no data, so leaving it out changes no pixel.
inline PngChunkCheck check_png_chunks(std::span<const std::uint8_t> b) {
  static constexpr std::uint8_t signature[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  PngChunkCheck check;
  if (b.size() < 8 || !std::equal(std::begin(signature), std::end(signature), b.begin())) return check;
  const auto be32 = [&](std::size_t i) {
    return (std::uint64_t{b[i]} << 24) | (std::uint64_t{b[i + 1]} << 16) | (std::uint64_t{b[i + 2]} << 8) | b[i + 3];
  };
  std::vector<std::pair<std::size_t, std::size_t>> kept;  // [begin, end) byte ranges
  std::size_t from = 0, i = 8;
  bool dropped = false;
  while (i + 8 <= b.size()) {  // a chunk's length and type: what stb reads before it copies the data
    const std::uint64_t length = be32(i);
    const std::size_t left = b.size() - i - 8;  // bytes after this chunk's header
    if (std::memcmp(b.data() + i + 4, "IDAT", 4) == 0) {
      if (length > left) {
        check.defect = visopt::detail::concat("corrupt PNG: the IDAT chunk at byte ", i, " declares ", length,
                                              " bytes of data, but only ", left, " follow it");
        return check;
      }
      if (length == 0) {
        kept.emplace_back(from, i);
        from = std::min(i + 12, b.size());  // with its CRC, or what is left of it
        dropped = true;
      }
    }
    if (length + 4 > left) break;  // data or CRC cut off: the rest goes to stb as it is
    i += 12 + static_cast<std::size_t>(length);
  }
  if (!dropped) return check;
  kept.emplace_back(from, b.size());
  std::vector<std::uint8_t> out;
  out.reserve(b.size());
  for (const auto& [begin, end] : kept) out.insert(out.end(), b.begin() + static_cast<std::ptrdiff_t>(begin), b.begin() + static_cast<std::ptrdiff_t>(end));
  check.repaired = std::move(out);
  return check;
}

}  // namespace visopt::io::detail
