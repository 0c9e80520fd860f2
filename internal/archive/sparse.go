package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// segment is a run of data in a sparse file.
type segment struct{ off, len int64 }

// dataSegments returns the data runs of the open regular file fd of the given
// size, found with SEEK_DATA/SEEK_HOLE, or nil when the file has no holes.
// It moves the file offset: read the file with pread.
func dataSegments(fd int, size int64) ([]segment, error) {
	if size == 0 {
		return nil, nil
	}
	hole, err := unix.Seek(fd, 0, unix.SEEK_HOLE)
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil // the filesystem does not say: treat as dense
		}
		return nil, fmt.Errorf("seek hole: %w", err)
	}
	if hole >= size {
		return nil, nil
	}
	segs := []segment{}
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole up to the end
		}
		if err != nil {
			return nil, fmt.Errorf("seek data at %d: %w", off, err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole at %d: %w", data, err)
		}
		hole = min(hole, size)
		segs = append(segs, segment{off: data, len: hole - data})
		off = hole
	}
	// GNU tar ends the map with the file's end, so a trailing hole is kept.
	if last := len(segs) - 1; last < 0 || segs[last].off+segs[last].len < size {
		segs = append(segs, segment{off: size, len: 0})
	}
	return segs, nil
}

// writeSparse writes regular file f as a PAX 1.0 GNU sparse entry (the format
// GNU tar writes with --sparse --format=pax and Go's archive/tar reads): a PAX
// header naming the real file and size, a ustar header with a stand-in name,
// then the sparse map and the data runs. archive/tar cannot write sparse
// entries, so the blocks are made here and written between two entries of
// t.tw.
func (t *tarWriter) writeSparse(hdr *tar.Header, f *os.File, segs []segment) error {
	if err := t.tw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}

	var sparseMap bytes.Buffer
	fmt.Fprintf(&sparseMap, "%d\n", len(segs))
	var dataLen int64
	for _, s := range segs {
		fmt.Fprintf(&sparseMap, "%d\n%d\n", s.off, s.len)
		dataLen += s.len
	}
	sparseMap.Write(make([]byte, padding(int64(sparseMap.Len()))))
	encSize := int64(sparseMap.Len()) + dataLen

	records := map[string]string{
		"GNU.sparse.major":    "1",
		"GNU.sparse.minor":    "0",
		"GNU.sparse.name":     hdr.Name,
		"GNU.sparse.realsize": strconv.FormatInt(hdr.Size, 10),
		"mtime":               paxTime(hdr),
	}
	for k, v := range hdr.PAXRecords {
		records[k] = v
	}
	const maxOctal7 = 0o7777777
	if hdr.Uid > maxOctal7 {
		records["uid"] = strconv.Itoa(hdr.Uid)
	}
	if hdr.Gid > maxOctal7 {
		records["gid"] = strconv.Itoa(hdr.Gid)
	}
	if encSize > 0o77777777777 {
		records["size"] = strconv.FormatInt(encSize, 10)
	}
	var pax bytes.Buffer
	keys := make([]string, 0, len(records))
	for k := range records {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		pax.WriteString(paxRecord(k, records[k]))
	}

	base := path.Base(hdr.Name)
	var blocks bytes.Buffer
	blocks.Write(ustarHeader(ustarFields{
		name: "PaxHeaders.0/" + base, mode: 0o644, size: int64(pax.Len()), mtime: hdr.ModTime.Unix(), typeflag: tar.TypeXHeader,
	}))
	blocks.Write(pax.Bytes())
	blocks.Write(make([]byte, padding(int64(pax.Len()))))
	blocks.Write(ustarHeader(ustarFields{
		name: "GNUSparseFile.0/" + base, mode: hdr.Mode, uid: min(hdr.Uid, maxOctal7), gid: min(hdr.Gid, maxOctal7),
		size: min(encSize, 0o77777777777), mtime: hdr.ModTime.Unix(), typeflag: tar.TypeReg,
	}))
	blocks.Write(sparseMap.Bytes())
	if _, err := t.bw.Write(blocks.Bytes()); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	for _, s := range segs {
		n, err := io.CopyBuffer(t.bw, io.NewSectionReader(f, s.off, s.len), t.buf)
		if err != nil {
			return fmt.Errorf("write %s: %w", hdr.Name, err)
		}
		if n != s.len {
			return fmt.Errorf("%s shrank while it was read", hdr.Name)
		}
	}
	if _, err := t.bw.Write(make([]byte, padding(dataLen))); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	return nil
}

// padding is the number of zero bytes that complete a 512-byte block.
func padding(n int64) int64 { return -n & 511 }

// paxRecord formats one PAX record: "<length> <key>=<value>\n", where the
// length counts itself.
func paxRecord(k, v string) string {
	size := len(k) + len(v) + 3 // ' ', '=', '\n'
	size += len(strconv.Itoa(size))
	rec := strconv.Itoa(size) + " " + k + "=" + v + "\n"
	if len(rec) != size { // the length gained a digit
		size = len(rec)
		rec = strconv.Itoa(size) + " " + k + "=" + v + "\n"
	}
	return rec
}

// paxTime formats the modification time as a PAX decimal with nanoseconds.
func paxTime(hdr *tar.Header) string {
	sec, nsec := hdr.ModTime.Unix(), hdr.ModTime.Nanosecond()
	if nsec == 0 {
		return strconv.FormatInt(sec, 10)
	}
	if sec < 0 { // -1.5 s is second -2 plus 0.5 s
		sec++
		nsec = 1e9 - nsec
		return strings.TrimRight(fmt.Sprintf("-%d.%09d", -sec, nsec), "0")
	}
	return strings.TrimRight(fmt.Sprintf("%d.%09d", sec, nsec), "0")
}

type ustarFields struct {
	name             string
	mode             int64
	uid, gid         int
	size, mtime      int64
	typeflag         byte
	devmajor, devmin int64
}

// ustarHeader builds one 512-byte ustar header block. Names longer than the
// 100-byte field are cut: the PAX record in front of it carries the real one.
func ustarHeader(f ustarFields) []byte {
	b := make([]byte, 512)
	copy(b[0:100], truncate(f.name, 100))
	octal(b[100:108], f.mode)
	octal(b[108:116], int64(f.uid))
	octal(b[116:124], int64(f.gid))
	octal(b[124:136], f.size)
	octal(b[136:148], max(f.mtime, 0))
	b[156] = f.typeflag
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	octal(b[329:337], f.devmajor)
	octal(b[337:345], f.devmin)
	// The checksum is computed with its own field as spaces.
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// octal writes v as zero-padded octal ending in NUL, filling the field.
func octal(field []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	width := len(field) - 1
	if len(s) > width {
		s = s[len(s)-width:]
	}
	copy(field, strings.Repeat("0", width-len(s))+s)
	field[width] = 0
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
