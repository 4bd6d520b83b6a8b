package nfsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
)

// NFS version 3 procedure numbers (RFC 1813).
const (
	ProcNull uint32 = iota
	ProcGetattr
	ProcSetattr
	ProcLookup
	ProcAccess
	ProcReadlink
	ProcRead
	ProcWrite
	ProcCreate
	ProcMkdir
	ProcSymlink
	ProcMknod
	ProcRemove
	ProcRmdir
	ProcRename
	ProcLink
	ProcReaddir
	ProcReaddirplus
	ProcFsstat
	ProcFsinfo
	ProcPathconf
	ProcCommit
)

// NFSProgram and NFSVersion address NFSv3 calls.
const (
	NFSProgram = nfsv3.NFS_PROGRAM_PROGRAM_NUMBER
	NFSVersion = 3
)

// failed is the status returned with an error, so that a caller that only
// looks at the status never takes a failed call for a success.
const failed = nfsv3.NFS3ERR_SERVERFAULT

type nfsResult interface{ GetStatus() nfsv3.Nfsstat3 }

// nfsCall calls an NFSv3 procedure and decodes its result union.
func nfsCall[R nfsResult](ctx context.Context, c *Client, proc uint32, args io.WriterTo, read func(io.Reader) (R, int64, error)) (R, nfsv3.Nfsstat3, error) {
	var res R
	if err := c.Call(ctx, NFSProgram, NFSVersion, proc, args, Into(&res, read)); err != nil {
		return res, failed, err
	}
	return res, res.GetStatus(), nil
}

func fh(b []byte) nfsv3.NfsFh3 { return nfsv3.NfsFh3{Data: b} }

// Null calls NFSPROC3_NULL.
func (c *Client) Null(ctx context.Context) error {
	return c.Call(ctx, NFSProgram, NFSVersion, ProcNull, nil, nil)
}

// Getattr returns a file's attributes.
func (c *Client) Getattr(ctx context.Context, h []byte) (*nfsv3.Fattr3, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcGetattr, &nfsv3.Getattr3args{Object: fh(h)}, nfsv3.ReadGetattr3res)
	if ok, _ := res.(*nfsv3.Getattr3res_NFS3_OK); ok != nil {
		return &ok.Resok.ObjAttributes, st, err
	}
	return nil, st, err
}

// Setattr changes attributes; guard, if not nil, must equal the file's ctime.
// The WCC data is returned whatever the status.
func (c *Client) Setattr(ctx context.Context, h []byte, s Set, guard *nfsv3.Nfstime3) (*nfsv3.WccData, nfsv3.Nfsstat3, error) {
	args := &nfsv3.Setattr3args{Object: fh(h), NewAttributes: s.Sattr3(), Guard: &nfsv3.Sattrguard3_FALSE{}}
	if guard != nil {
		args.Guard = &nfsv3.Sattrguard3_TRUE{ObjCtime: *guard}
	}
	res, st, err := nfsCall(ctx, c, ProcSetattr, args, nfsv3.ReadSetattr3res)
	switch r := res.(type) {
	case *nfsv3.Setattr3res_NFS3_OK:
		return &r.Resok.ObjWcc, st, err
	case *nfsv3.Setattr3res_default:
		return &r.Resfail.ObjWcc, st, err
	}
	return nil, st, err
}

// Lookup looks name up in directory dir.
func (c *Client) Lookup(ctx context.Context, dir []byte, name string) (*nfsv3.Lookup3resok, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcLookup, &nfsv3.Lookup3args{What: nfsv3.Diropargs3{Dir: fh(dir), Name: name}}, nfsv3.ReadLookup3res)
	if ok, _ := res.(*nfsv3.Lookup3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// LookupPath looks up a slash-separated path from dir, one component at a
// time, and returns the handle of its last component.
func (c *Client) LookupPath(ctx context.Context, dir []byte, path string) ([]byte, nfsv3.Nfsstat3, error) {
	h := dir
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		if name == "" {
			continue
		}
		r, st, err := c.Lookup(ctx, h, name)
		if err != nil || st != nfsv3.NFS3_OK {
			return nil, st, err
		}
		h = r.Object.Data
	}
	return h, nfsv3.NFS3_OK, nil
}

// Access asks which of the ACCESS3_* rights in mask the caller has.
func (c *Client) Access(ctx context.Context, h []byte, mask uint32) (uint32, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcAccess, &nfsv3.Access3args{Object: fh(h), Access: mask}, nfsv3.ReadAccess3res)
	if ok, _ := res.(*nfsv3.Access3res_NFS3_OK); ok != nil {
		return ok.Resok.Access, st, err
	}
	return 0, st, err
}

// Readlink returns a symlink's target.
func (c *Client) Readlink(ctx context.Context, h []byte) (string, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcReadlink, &nfsv3.Readlink3args{Symlink: fh(h)}, nfsv3.ReadReadlink3res)
	if ok, _ := res.(*nfsv3.Readlink3res_NFS3_OK); ok != nil {
		return ok.Resok.Data, st, err
	}
	return "", st, err
}

// Read reads up to count bytes at off.
func (c *Client) Read(ctx context.Context, h []byte, off uint64, count uint32) (*nfsv3.Read3resok, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcRead, &nfsv3.Read3args{File: fh(h), Offset: off, Count: count}, nfsv3.ReadRead3res)
	if ok, _ := res.(*nfsv3.Read3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Write writes data at off, FILE_SYNC.
func (c *Client) Write(ctx context.Context, h []byte, off uint64, data []byte) (*nfsv3.Write3resok, nfsv3.Nfsstat3, error) {
	return c.WriteHow(ctx, h, off, data, nfsv3.FILE_SYNC)
}

// WriteHow writes data at off with the stability asked for (UNSTABLE,
// DATA_SYNC, FILE_SYNC); an UNSTABLE write is safe only once a COMMIT
// returned the verifier of its reply.
func (c *Client) WriteHow(ctx context.Context, h []byte, off uint64, data []byte, how nfsv3.StableHow) (*nfsv3.Write3resok, nfsv3.Nfsstat3, error) {
	args := &nfsv3.Write3args{File: fh(h), Offset: off, Count: uint32(len(data)), Stable: how, Data: data}
	res, st, err := nfsCall(ctx, c, ProcWrite, args, nfsv3.ReadWrite3res)
	if ok, _ := res.(*nfsv3.Write3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// ReadFile reads a whole file in reads of chunk bytes (0: 1 MiB), up to
// max bytes (an error beyond).
func (c *Client) ReadFile(ctx context.Context, h []byte, chunk uint32, max int) ([]byte, error) {
	if chunk == 0 {
		chunk = 1 << 20
	}
	var out []byte
	for i := 0; i <= max/int(chunk)+1; i++ {
		r, st, err := c.Read(ctx, h, uint64(len(out)), chunk)
		if err != nil {
			return out, err
		}
		if st != nfsv3.NFS3_OK {
			return out, fmt.Errorf("nfsclient: READ at %d: status %d", len(out), st)
		}
		out = append(out, r.Data...)
		if len(out) > max {
			return out, fmt.Errorf("nfsclient: file longer than %d bytes", max)
		}
		if r.Eof {
			return out, nil
		}
		if len(r.Data) == 0 {
			return out, errors.New("nfsclient: READ returned no data before EOF")
		}
	}
	return out, fmt.Errorf("nfsclient: no EOF after %d bytes", len(out))
}

// WriteFile writes data from offset 0 in FILE_SYNC writes of chunk bytes
// (0: 1 MiB).
func (c *Client) WriteFile(ctx context.Context, h []byte, data []byte, chunk int) error {
	if chunk <= 0 {
		chunk = 1 << 20
	}
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		r, st, err := c.Write(ctx, h, uint64(off), data[off:end])
		if err != nil {
			return err
		}
		if st != nfsv3.NFS3_OK {
			return fmt.Errorf("nfsclient: WRITE at %d: status %d", off, st)
		}
		if int(r.Count) != end-off {
			return fmt.Errorf("nfsclient: WRITE at %d: %d of %d bytes written", off, r.Count, end-off)
		}
	}
	return nil
}

// Create creates a regular file; how is Unchecked, Guarded or Exclusive.
func (c *Client) Create(ctx context.Context, dir []byte, name string, how nfsv3.Createhow3) (*nfsv3.Create3resok, nfsv3.Nfsstat3, error) {
	return c.CreateXID(ctx, c.NextXID(), dir, name, how)
}

// CreateXID is Create sent with a chosen xid.
func (c *Client) CreateXID(ctx context.Context, xid uint32, dir []byte, name string, how nfsv3.Createhow3) (*nfsv3.Create3resok, nfsv3.Nfsstat3, error) {
	var res nfsv3.Create3res
	err := c.CallXID(ctx, xid, NFSProgram, NFSVersion, ProcCreate,
		&nfsv3.Create3args{Where: nfsv3.Diropargs3{Dir: fh(dir), Name: name}, How: how}, Into(&res, nfsv3.ReadCreate3res))
	if err != nil {
		return nil, failed, err
	}
	if ok, _ := res.(*nfsv3.Create3res_NFS3_OK); ok != nil {
		return &ok.Resok, res.GetStatus(), nil
	}
	return nil, res.GetStatus(), nil
}

// Mkdir creates a directory.
func (c *Client) Mkdir(ctx context.Context, dir []byte, name string, s Set) (*nfsv3.Mkdir3resok, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcMkdir, &nfsv3.Mkdir3args{Where: nfsv3.Diropargs3{Dir: fh(dir), Name: name}, Attributes: s.Sattr3()}, nfsv3.ReadMkdir3res)
	if ok, _ := res.(*nfsv3.Mkdir3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Symlink creates a symbolic link to target.
func (c *Client) Symlink(ctx context.Context, dir []byte, name, target string, s Set) (*nfsv3.Symlink3resok, nfsv3.Nfsstat3, error) {
	args := &nfsv3.Symlink3args{Where: nfsv3.Diropargs3{Dir: fh(dir), Name: name},
		Symlink: nfsv3.Symlinkdata3{SymlinkAttributes: s.Sattr3(), SymlinkData: target}}
	res, st, err := nfsCall(ctx, c, ProcSymlink, args, nfsv3.ReadSymlink3res)
	if ok, _ := res.(*nfsv3.Symlink3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Mknod creates a special file (what: nfsv3.Mknoddata3_NF3CHR etc.).
func (c *Client) Mknod(ctx context.Context, dir []byte, name string, what nfsv3.Mknoddata3) (*nfsv3.Mknod3resok, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcMknod, &nfsv3.Mknod3args{Where: nfsv3.Diropargs3{Dir: fh(dir), Name: name}, What: what}, nfsv3.ReadMknod3res)
	if ok, _ := res.(*nfsv3.Mknod3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Remove removes a non-directory; the directory's WCC data is returned
// whatever the status.
func (c *Client) Remove(ctx context.Context, dir []byte, name string) (*nfsv3.WccData, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcRemove, &nfsv3.Remove3args{Object: nfsv3.Diropargs3{Dir: fh(dir), Name: name}}, nfsv3.ReadRemove3res)
	switch r := res.(type) {
	case *nfsv3.Remove3res_NFS3_OK:
		return &r.Resok.DirWcc, st, err
	case *nfsv3.Remove3res_default:
		return &r.Resfail.DirWcc, st, err
	}
	return nil, st, err
}

// Rmdir removes an empty directory.
func (c *Client) Rmdir(ctx context.Context, dir []byte, name string) (*nfsv3.WccData, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcRmdir, &nfsv3.Rmdir3args{Object: nfsv3.Diropargs3{Dir: fh(dir), Name: name}}, nfsv3.ReadRmdir3res)
	switch r := res.(type) {
	case *nfsv3.Rmdir3res_NFS3_OK:
		return &r.Resok.DirWcc, st, err
	case *nfsv3.Rmdir3res_default:
		return &r.Resfail.DirWcc, st, err
	}
	return nil, st, err
}

// Rename moves fromDir/fromName to toDir/toName.
func (c *Client) Rename(ctx context.Context, fromDir []byte, fromName string, toDir []byte, toName string) (*nfsv3.Rename3resok, nfsv3.Nfsstat3, error) {
	args := &nfsv3.Rename3args{From: nfsv3.Diropargs3{Dir: fh(fromDir), Name: fromName}, To: nfsv3.Diropargs3{Dir: fh(toDir), Name: toName}}
	res, st, err := nfsCall(ctx, c, ProcRename, args, nfsv3.ReadRename3res)
	if ok, _ := res.(*nfsv3.Rename3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Link makes dir/name a hard link to file.
func (c *Client) Link(ctx context.Context, file, dir []byte, name string) (*nfsv3.Link3resok, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcLink, &nfsv3.Link3args{File: fh(file), Link: nfsv3.Diropargs3{Dir: fh(dir), Name: name}}, nfsv3.ReadLink3res)
	if ok, _ := res.(*nfsv3.Link3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Readdir reads one page of a directory (READDIR).
func (c *Client) Readdir(ctx context.Context, dir []byte, cookie uint64, verf [8]byte, count uint32) (*nfsv3.Readdir3resok, nfsv3.Nfsstat3, error) {
	args := &nfsv3.Readdir3args{Dir: fh(dir), Cookie: cookie, Cookieverf: verf, Count: count}
	res, st, err := nfsCall(ctx, c, ProcReaddir, args, nfsv3.ReadReaddir3res)
	if ok, _ := res.(*nfsv3.Readdir3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// ReaddirPlusPage reads one page of a directory with attributes and handles
// (READDIRPLUS).
func (c *Client) ReaddirPlusPage(ctx context.Context, dir []byte, cookie uint64, verf [8]byte, dircount, maxcount uint32) (*nfsv3.Readdirplus3resok, nfsv3.Nfsstat3, error) {
	args := &nfsv3.Readdirplus3args{Dir: fh(dir), Cookie: cookie, Cookieverf: verf, Dircount: dircount, Maxcount: maxcount}
	res, st, err := nfsCall(ctx, c, ProcReaddirplus, args, nfsv3.ReadReaddirplus3res)
	if ok, _ := res.(*nfsv3.Readdirplus3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Entry is one directory entry listed by ReaddirPlus.
type Entry struct {
	Name   string
	Fileid uint64
	Cookie uint64
	Handle []byte        // nil if the server sent none
	Attr   *nfsv3.Fattr3 // nil if the server sent none
}

// MaxPages bounds how many pages ReaddirPlus reads.
const MaxPages = 1 << 20

// ReaddirPlus lists a whole directory ("." and ".." included), page by page
// of at most maxcount bytes (0: 64 KiB). It fails if a page does not move
// the cookie on.
func (c *Client) ReaddirPlus(ctx context.Context, dir []byte, maxcount uint32) ([]Entry, nfsv3.Nfsstat3, error) {
	if maxcount == 0 {
		maxcount = 64 << 10
	}
	var out []Entry
	var cookie uint64
	var verf [8]byte
	for page := 0; page < MaxPages; page++ {
		r, st, err := c.ReaddirPlusPage(ctx, dir, cookie, verf, maxcount, maxcount)
		if err != nil || st != nfsv3.NFS3_OK {
			return out, st, err
		}
		verf = r.Cookieverf
		n := 0
		for e := r.Reply.Entries; e != nil; e = e.Nextentry {
			ent := Entry{Name: e.Name, Fileid: e.Fileid, Cookie: e.Cookie, Handle: Handle(e.NameHandle)}
			if a, ok := Attr(e.NameAttributes); ok {
				ent.Attr = &a
			}
			out = append(out, ent)
			cookie = e.Cookie
			n++
		}
		if r.Reply.Eof {
			return out, nfsv3.NFS3_OK, nil
		}
		if n == 0 {
			return out, failed, errors.New("nfsclient: READDIRPLUS returned an empty page before EOF")
		}
	}
	return out, failed, fmt.Errorf("nfsclient: directory not listed in %d pages", MaxPages)
}

// Fsstat returns a filesystem's space and inode counts.
func (c *Client) Fsstat(ctx context.Context, root []byte) (*nfsv3.Fsstat3resok, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcFsstat, &nfsv3.Fsstat3args{Fsroot: fh(root)}, nfsv3.ReadFsstat3res)
	if ok, _ := res.(*nfsv3.Fsstat3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Fsinfo returns a filesystem's limits and preferences.
func (c *Client) Fsinfo(ctx context.Context, root []byte) (*nfsv3.Fsinfo3resok, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcFsinfo, &nfsv3.Fsinfo3args{Fsroot: fh(root)}, nfsv3.ReadFsinfo3res)
	if ok, _ := res.(*nfsv3.Fsinfo3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Pathconf returns a file's POSIX pathconf values.
func (c *Client) Pathconf(ctx context.Context, h []byte) (*nfsv3.Pathconf3resok, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcPathconf, &nfsv3.Pathconf3args{Object: fh(h)}, nfsv3.ReadPathconf3res)
	if ok, _ := res.(*nfsv3.Pathconf3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}

// Commit commits count bytes at off (0, 0: the whole file).
func (c *Client) Commit(ctx context.Context, h []byte, off uint64, count uint32) (*nfsv3.Commit3resok, nfsv3.Nfsstat3, error) {
	res, st, err := nfsCall(ctx, c, ProcCommit, &nfsv3.Commit3args{File: fh(h), Offset: off, Count: count}, nfsv3.ReadCommit3res)
	if ok, _ := res.(*nfsv3.Commit3res_NFS3_OK); ok != nil {
		return &ok.Resok, st, err
	}
	return nil, st, err
}
