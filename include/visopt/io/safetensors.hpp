#pragma once
// Reads and writes safetensors weight files (https://huggingface.co/docs/safetensors): a memory-mapped
// reader that validates the whole header before handing out a single byte, and a writer whose files
// PyTorch's safetensors reads back. Weights reach the models only through here.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/dtype.hpp"
#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "../core/tensor.hpp"

namespace visopt::io {

// The file format is little-endian and we copy element bytes as they are.
static_assert(std::endian::native == std::endian::little, "visopt::io::SafeTensors assumes a little-endian host");

struct TensorInfo {
  std::string name;
  std::string dtype;  // safetensors spelling, e.g. "F32"
  Shape shape;
  std::size_t begin = 0, end = 0;  // byte offsets in the data section
};

namespace detail {

struct DTypeSpec {
  std::string_view name;
  std::size_t size;
  std::optional<DType> dtype;  // set for the dtypes load() converts from
};

inline constexpr std::array<DTypeSpec, 15> dtype_specs{{
    {"F32", 4, DType::f32}, {"F16", 2, DType::f16}, {"BF16", 2, DType::bf16}, {"F64", 8, std::nullopt},
    {"I64", 8, std::nullopt}, {"I32", 4, std::nullopt}, {"I16", 2, std::nullopt}, {"I8", 1, std::nullopt},
    {"U64", 8, std::nullopt}, {"U32", 4, std::nullopt}, {"U16", 2, std::nullopt}, {"U8", 1, std::nullopt},
    {"BOOL", 1, std::nullopt}, {"F8_E4M3", 1, std::nullopt}, {"F8_E5M2", 1, std::nullopt},
}};

inline const DTypeSpec* find_dtype(std::string_view name) {
  for (const auto& spec : dtype_specs)
    if (spec.name == name) return &spec;
  return nullptr;
}

inline std::string_view safetensors_name(DType dtype) {
  for (const auto& spec : dtype_specs)
    if (spec.dtype == dtype) return spec.name;
  return "?";
}

inline std::string known_dtype_list(bool convertible_only) {
  std::string list;
  for (const auto& spec : dtype_specs) {
    if (convertible_only && !spec.dtype) continue;
    if (!list.empty()) list += ", ";
    list += spec.name;
  }
  return list;
}

template <class... Args>
[[noreturn]] void raise(Args&&... message) {
  throw Error(visopt::detail::concat("safetensors: ", std::forward<Args>(message)...));
}

/// a * b, or nullopt when it does not fit 64 bits: shapes in a hostile header can multiply past 2^64.
inline std::optional<std::uint64_t> checked_multiply(std::uint64_t a, std::uint64_t b) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
  return a * b;
}

/// A JSON value as a non-negative integer; on failure `problem` says what it was instead.
inline std::optional<std::uint64_t> json_count(const nlohmann::json& value, std::string& problem) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer()) {
    const auto signed_value = value.get<std::int64_t>();
    if (signed_value >= 0) return static_cast<std::uint64_t>(signed_value);
    problem = "negative";
  } else if (value.is_number_float()) {
    problem = "not an integer";
  } else {
    problem = std::string("a JSON ") + value.type_name() + ", not a number";
  }
  return std::nullopt;
}

/// Read-only mapping of a whole file; unmapped on destruction. The descriptor is closed once mapped.
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(void* address, std::size_t length) : address_(address), length_(length) {}
  MappedFile(MappedFile&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), length_(std::exchange(other.length_, 0)) {}
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      release();
      address_ = std::exchange(other.address_, nullptr);
      length_ = std::exchange(other.length_, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { release(); }

  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(address_), length_}; }

 private:
  void release() noexcept {
    // munmap of a mapping we made cannot fail in a way we could act on inside a destructor.
    if (address_ != nullptr) ::munmap(address_, length_);
    address_ = nullptr;
    length_ = 0;
  }
  void* address_ = nullptr;
  std::size_t length_ = 0;
};

}  // namespace detail

class SafeTensors {
 public:
  /// Larger headers are not weight files: refuse them before handing them to the JSON parser.
  static constexpr std::uint64_t max_header_bytes = 100'000'000;

  /// Maps `path` read-only and validates the header and every tensor's extent before returning.
  /// The file must not be truncated while mapped (the OS would raise SIGBUS on access).
  static SafeTensors open(const std::filesystem::path& path);
  /// Same validation over bytes held in memory (fuzzing, tests, downloaded buffers); owns them.
  static SafeTensors from_bytes(std::vector<std::byte> bytes, std::string source_name = "<memory>");

  SafeTensors(SafeTensors&&) noexcept = default;
  SafeTensors& operator=(SafeTensors&&) noexcept = default;
  SafeTensors(const SafeTensors&) = delete;
  SafeTensors& operator=(const SafeTensors&) = delete;
  ~SafeTensors() = default;

  const std::string& source() const { return source_; }
  bool contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }
  const TensorInfo& info(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// The tensor's bytes as stored: any dtype, little-endian, possibly unaligned.
  std::span<const std::byte> raw_bytes(std::string_view name) const;

  /// Copies the tensor into a new host Tensor converted to `as`. Sources must be F32, F16 or BF16.
  Tensor load(std::string_view name, DType as = DType::f32) const;
  /// Same, after checking that the stored shape equals `expected`.
  Tensor load(std::string_view name, const Shape& expected, DType as = DType::f32) const;

 private:
  SafeTensors(std::string source, std::vector<std::byte> owned, detail::MappedFile mapping)
      : source_(std::move(source)), owned_(std::move(owned)), mapping_(std::move(mapping)) {
    // Moving a vector or a mapping keeps its buffer where it is, so file_ stays valid across moves.
    file_ = owned_.empty() ? mapping_.bytes() : std::span<const std::byte>(owned_);
    parse();
  }

  void parse();
  void parse_metadata(const nlohmann::json& value);
  TensorInfo parse_entry(const std::string& name, const nlohmann::json& entry) const;
  void check_overlaps() const;

  std::string source_;
  std::vector<std::byte> owned_;
  detail::MappedFile mapping_;
  std::span<const std::byte> file_;  // the whole file
  std::span<const std::byte> data_;  // the data section, after the header
  std::map<std::string, TensorInfo, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

inline SafeTensors SafeTensors::open(const std::filesystem::path& path) {
  const std::string source = path.string();
  struct Descriptor {
    int fd;
    ~Descriptor() {
      if (fd >= 0) ::close(fd);
    }
  } file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) detail::raise("cannot open '", source, "': ", std::strerror(errno));
  struct stat status {};
  if (::fstat(file.fd, &status) != 0) detail::raise("cannot stat '", source, "': ", std::strerror(errno));
  if (!S_ISREG(status.st_mode)) detail::raise("'", source, "' is not a regular file");
  const auto size = static_cast<std::size_t>(status.st_size);
  if (size == 0) return SafeTensors(source, {}, {});  // mmap refuses length 0; parse() reports the truncation
  void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.fd, 0);
  if (address == MAP_FAILED) detail::raise("cannot map '", source, "' (", size, " bytes): ", std::strerror(errno));
  return SafeTensors(source, {}, detail::MappedFile(address, size));
}

inline SafeTensors SafeTensors::from_bytes(std::vector<std::byte> bytes, std::string source_name) {
  return SafeTensors(std::move(source_name), std::move(bytes), {});
}

inline void SafeTensors::parse() {
  if (file_.size() < 8)
    detail::raise("'", source_, "' is truncated: ", file_.size(), " bytes, needs at least 8 for the header length");
  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i)
    header_length = (header_length << 8) | std::to_integer<std::uint64_t>(file_[static_cast<std::size_t>(i)]);
  if (header_length > max_header_bytes)
    detail::raise("'", source_, "' declares a header of ", header_length, " bytes, more than the limit of ",
                  max_header_bytes, "; it is not a safetensors file or it is corrupt");
  if (header_length > file_.size() - 8)
    detail::raise("'", source_, "' declares a header of ", header_length,
                  " bytes that runs past the end of the file: the file has ", file_.size(), " bytes, needs at least ",
                  8 + header_length);
  const auto header_bytes = file_.subspan(8, static_cast<std::size_t>(header_length));
  data_ = file_.subspan(8 + static_cast<std::size_t>(header_length));

  // nlohmann keeps the last of two equal keys; a second tensor of the same name would silently win.
  std::set<std::string, std::less<>> seen;
  const auto reject_duplicates = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second) detail::raise("tensor '", key, "' appears twice in the header of '", source_, "'");
    }
    return true;
  };
  nlohmann::json header;
  try {
    const auto* first = reinterpret_cast<const char*>(header_bytes.data());
    header = nlohmann::json::parse(first, first + header_bytes.size(), reject_duplicates);
  } catch (const nlohmann::json::exception& e) {
    detail::raise("the header of '", source_, "' is not valid JSON: ", e.what());
  }
  if (!header.is_object())
    detail::raise("the header of '", source_, "' is a JSON ", header.type_name(),
                  ", expected an object mapping tensor names to {dtype, shape, data_offsets}");

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      parse_metadata(entry);
      continue;
    }
    tensors_.emplace(name, parse_entry(name, entry));
  }
  check_overlaps();
}

inline void SafeTensors::parse_metadata(const nlohmann::json& value) {
  if (!value.is_object())
    detail::raise("\"__metadata__\" in '", source_, "' is a JSON ", value.type_name(),
                  ", expected an object of string -> string");
  for (const auto& [key, text] : value.items()) {
    if (!text.is_string())
      detail::raise("\"__metadata__\" entry '", key, "' in '", source_, "' is a JSON ", text.type_name(),
                    ", expected a string");
    metadata_.emplace(key, text.get<std::string>());
  }
}

inline TensorInfo SafeTensors::parse_entry(const std::string& name, const nlohmann::json& entry) const {
  const auto where = [&] { return visopt::detail::concat("tensor '", name, "' in '", source_, "'"); };
  if (!entry.is_object())
    detail::raise(where(), " is described by a JSON ", entry.type_name(),
                  ", expected an object with dtype, shape and data_offsets");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field))
      detail::raise(where(), " has no \"", field, "\" field; each entry needs dtype, shape and data_offsets");

  const auto& dtype_json = entry.at("dtype");
  if (!dtype_json.is_string())
    detail::raise(where(), " has a \"dtype\" of JSON type ", dtype_json.type_name(), ", expected a string such as \"F32\"");
  const auto& dtype = dtype_json.get_ref<const std::string&>();
  const detail::DTypeSpec* spec = detail::find_dtype(dtype);
  if (spec == nullptr)
    detail::raise(where(), " has unknown dtype \"", dtype, "\"; known dtypes: ", detail::known_dtype_list(false));

  const auto& shape_json = entry.at("shape");
  if (!shape_json.is_array())
    detail::raise(where(), " has a \"shape\" of JSON type ", shape_json.type_name(),
                  ", expected an array of non-negative integers");
  if (shape_json.size() > static_cast<std::size_t>(Shape::max_rank))
    detail::raise(where(), " has rank ", shape_json.size(), " (shape ", shape_json.dump(), "); visopt supports at most ",
                  Shape::max_rank);
  std::vector<std::int64_t> extents;
  // Shape::numel() multiplies in int64, so even the non-zero extents of an empty tensor must not overflow.
  std::uint64_t nonzero_elements = 1;
  bool has_zero = false;
  for (std::size_t axis = 0; axis < shape_json.size(); ++axis) {
    std::string problem;
    const auto extent = detail::json_count(shape_json[axis], problem);
    if (!extent)
      detail::raise(where(), " has shape ", shape_json.dump(), " whose extent ", shape_json[axis].dump(), " at axis ",
                    axis, " is ", problem, "; expected non-negative integers");
    const auto product = detail::checked_multiply(nonzero_elements, *extent == 0 ? 1 : *extent);
    if (!product || *product > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      detail::raise(where(), " has shape ", shape_json.dump(),
                    " whose element count overflows 63 bits; the header is corrupt");
    nonzero_elements = *product;
    has_zero = has_zero || *extent == 0;
    extents.push_back(static_cast<std::int64_t>(*extent));
  }
  const Shape shape(extents);
  const auto nbytes = has_zero ? std::optional<std::uint64_t>(0) : detail::checked_multiply(nonzero_elements, spec->size);
  if (!nbytes)
    detail::raise(where(), " has shape ", shape.to_string(), " of ", dtype,
                  " whose size in bytes overflows 64 bits; the header is corrupt");

  const auto& offsets = entry.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2)
    detail::raise(where(), " has data_offsets ", offsets.dump(), ", expected an array [begin, end] of two integers");
  std::string begin_problem, end_problem;
  const auto begin = detail::json_count(offsets[0], begin_problem);
  const auto end = detail::json_count(offsets[1], end_problem);
  if (!begin || !end)
    detail::raise(where(), " has data_offsets ", offsets.dump(), " whose ", begin ? "end" : "begin", " is ",
                  begin ? end_problem : begin_problem, "; expected non-negative integers");
  if (*begin > *end)
    detail::raise(where(), " has data_offsets ", offsets.dump(), " that begin after they end; expected begin <= end");
  if (*end > data_.size())
    detail::raise(where(), " ends at byte ", *end, ", but the data section has only ", data_.size(), " bytes");
  if (*nbytes != *end - *begin)
    detail::raise(where(), " has shape ", shape.to_string(), " of ", dtype, " = ", *nbytes,
                  " bytes, but its data_offsets span ", *end - *begin);
  return TensorInfo{name, dtype, shape, static_cast<std::size_t>(*begin), static_cast<std::size_t>(*end)};
}

inline void SafeTensors::check_overlaps() const {
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, info] : tensors_)
    if (info.end > info.begin) by_offset.push_back(&info);  // an empty tensor occupies no bytes
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  // Track the tensor reaching furthest so far: one long tensor may overlap many that follow it.
  const TensorInfo* furthest = nullptr;
  for (const TensorInfo* info : by_offset) {
    if (furthest != nullptr && info->begin < furthest->end)
      detail::raise("tensors '", furthest->name, "' [", furthest->begin, ", ", furthest->end, ") and '", info->name,
                    "' [", info->begin, ", ", info->end, ") in '", source_, "' overlap in the data section");
    if (furthest == nullptr || info->end > furthest->end) furthest = info;
  }
}

inline const TensorInfo& SafeTensors::info(std::string_view name) const {
  const auto found = tensors_.find(name);
  if (found == tensors_.end()) {
    std::string some;
    for (const auto& [other, _] : tensors_) {
      if (some.size() > 200) {
        some += ", ...";
        break;
      }
      some += (some.empty() ? "'" : ", '") + other + "'";
    }
    detail::raise("no tensor named '", name, "' in '", source_, "'; it holds ", tensors_.size(), " tensors",
                  some.empty() ? "" : ": ", some);
  }
  return found->second;
}

inline std::vector<std::string> SafeTensors::names() const {
  std::vector<std::string> result;
  result.reserve(tensors_.size());
  for (const auto& [name, _] : tensors_) result.push_back(name);
  return result;
}

inline std::span<const std::byte> SafeTensors::raw_bytes(std::string_view name) const {
  const TensorInfo& tensor = info(name);
  return data_.subspan(tensor.begin, tensor.end - tensor.begin);
}

inline Tensor SafeTensors::load(std::string_view name, DType as) const {
  const TensorInfo& tensor = info(name);
  const detail::DTypeSpec* spec = detail::find_dtype(tensor.dtype);
  if (!spec->dtype)
    detail::raise("tensor '", tensor.name, "' in '", source_, "' has dtype ", tensor.dtype,
                  ", which load() cannot convert; accepted source dtypes: ", detail::known_dtype_list(true),
                  " (raw_bytes() gives any dtype as stored)");
  const DType source_type = *spec->dtype;
  Tensor result = Tensor::empty(tensor.shape, as);
  const std::byte* source = data_.data() + tensor.begin;
  const auto count = static_cast<std::size_t>(tensor.shape.numel());
  if (source_type == as) {
    std::memcpy(result.data(), source, tensor.end - tensor.begin);
    return result;
  }
  // The data section follows a header of any length, so elements may be misaligned for their type:
  // stage them through an aligned buffer rather than reading them in place.
  constexpr std::size_t chunk = 16384;
  std::vector<float> staging(std::min(count, chunk));
  auto* destination = static_cast<std::byte*>(result.data());
  for (std::size_t done = 0; done < count; done += chunk) {
    const std::size_t n = std::min(chunk, count - done);
    std::memcpy(staging.data(), source + done * spec->size, n * spec->size);
    convert_elements(staging.data(), source_type, destination + done * dtype_size(as), as, n);
  }
  return result;
}

inline Tensor SafeTensors::load(std::string_view name, const Shape& expected, DType as) const {
  const TensorInfo& tensor = info(name);
  if (!(tensor.shape == expected))
    detail::raise("tensor '", tensor.name, "' in '", source_, "' has shape ", tensor.shape.to_string(),
                  ", model expects ", expected.to_string());
  return load(name, as);
}

/// Writes `tensors` (dense host tensors of f32/f16/bf16) in the given order, with optional metadata.
/// The header is padded with spaces to a multiple of 8 bytes, as the reference writer does, so the data
/// section starts aligned. The file appears under `path` only once complete (written aside, then renamed).
inline void save_safetensors(const std::filesystem::path& path,
                             const std::vector<std::pair<std::string, TensorView>>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  const std::string target = path.string();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto& [name, view] : tensors) {
    // Captures the binding through a reference: clang before 16 cannot capture structured bindings.
    const std::string& tensor_name = name;
    const auto where = [&] { return visopt::detail::concat("cannot write tensor '", tensor_name, "' to '", target, "'"); };
    if (name == "__metadata__") detail::raise(where(), ": the name \"__metadata__\" is reserved for metadata");
    if (header.contains(name)) detail::raise(where(), ": the name appears twice in the list of tensors");
    if (!view.device().is_cpu())
      detail::raise(where(), ": it is on ", view.device().to_string(), ", expected a host tensor");
    if (!view.is_contiguous())
      detail::raise(where(), ": shape ", view.shape().to_string(),
                    " is not contiguous (safetensors stores row-major data); convert it to a contiguous tensor first");
    if (view.empty() && view.numel() != 0) detail::raise(where(), ": it has no data");
    const std::size_t nbytes = view.nbytes();
    header[name] = {{"dtype", std::string(detail::safetensors_name(view.dtype()))},
                    {"shape", std::vector<std::int64_t>(view.shape().begin(), view.shape().end())},
                    {"data_offsets", nlohmann::ordered_json::array({offset, offset + nbytes})}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // names or metadata that are not valid UTF-8
    detail::raise("cannot write the header of '", target, "': ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  std::array<char, 8> length{};
  for (std::size_t i = 0; i < 8; ++i) length[i] = static_cast<char>((text.size() >> (8 * i)) & 0xffu);
  const std::filesystem::path partial = path.string() + ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    if (!out) detail::raise("cannot open '", partial.string(), "' for writing: ", std::strerror(errno));
    out.write(length.data(), length.size());
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, view] : tensors)
      out.write(static_cast<const char*>(view.data()), static_cast<std::streamsize>(view.nbytes()));
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(partial, ignored);
      detail::raise("writing '", partial.string(), "' failed (", offset + 8 + text.size(), " bytes)");
    }
  }
  std::error_code error;
  std::filesystem::rename(partial, path, error);
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(partial, ignored);
    detail::raise("cannot move '", partial.string(), "' to '", target, "': ", error.message());
  }
}

}  // namespace visopt::io
