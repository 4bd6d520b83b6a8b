package e2e

// The third-party Go NFS client github.com/willscott/go-nfs-client (the
// maintained fork of vmware/go-nfs-client) drives what the libnfs utilities
// cannot: RENAME, SYMLINK + READLINK, SETATTR (chmod, truncate) and
// READDIRPLUS through its Target API; LINK, CREATE EXCLUSIVE and READDIRPLUS
// page by page through its own RPC and XDR layers (its Target has no call
// for them). Results are checked again with nfs-ls and nfs-cat.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	gonfs "github.com/willscott/go-nfs-client/nfs"
	gorpc "github.com/willscott/go-nfs-client/nfs/rpc"
	goxdr "github.com/willscott/go-nfs-client/nfs/xdr"
)

// gonfsTimeout bounds one operation of the third-party client, which
// retransmits (every 5 s, up to 100 times) on its own.
const gonfsTimeout = 60 * time.Second

// gonfsConn is a mount of /data with the third-party client.
type gonfsConn struct {
	*gonfs.Target
	auth gorpc.Auth
}

// gonfsMount connects to a node's NFS address (MOUNT and NFS on that port,
// no portmapper) as root and mounts /data.
func gonfsMount(t *testing.T, nfsAddr string) *gonfsConn {
	t.Helper()
	host, portStr, err := net.SplitHostPort(nfsAddr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	var g *gonfsConn
	var rc *gorpc.Client
	defer func() {
		if rc != nil {
			t.Cleanup(rc.Close)
		}
	}()
	within(t, gonfsTimeout, "go-nfs-client: mount /data at "+nfsAddr, func() error {
		var err error
		if rc, err = gonfs.DialServiceAtPort(host, port); err != nil {
			return err
		}
		auth := gorpc.NewAuthUnix("keel-e2e-gonfs", 0, 0).Auth()
		m := &gonfs.Mount{Client: rc} // no Addr: NFS calls share the MOUNT connection
		tgt, err := m.Mount("/data", auth)
		if err != nil {
			return err
		}
		g = &gonfsConn{Target: tgt, auth: auth}
		return nil
	})
	return g
}

func (g *gonfsConn) header(proc uint32) gorpc.Header {
	return gorpc.Header{Rpcvers: 2, Prog: gonfs.Nfs3Prog, Vers: gonfs.Nfs3Vers, Proc: proc, Cred: g.auth, Verf: gorpc.AuthNull}
}

// call sends an NFS call through the library's RPC client and returns the
// results after the status, or the status as the library's error.
func (g *gonfsConn) call(args any) (io.ReadSeeker, error) {
	res, err := g.Call(args)
	if err != nil {
		return nil, err
	}
	st, err := goxdr.ReadUint32(res)
	if err != nil {
		return nil, err
	}
	if err := gonfs.NFS3Error(st); err != nil {
		return nil, err
	}
	return res, nil
}

const (
	nfsProcLink        = 15
	nfsCreateExclusive = 2
)

// link makes dir/name a hard link to file (LINK).
func (g *gonfsConn) link(file, dir []byte, name string) (*gonfs.Fattr, error) {
	type link3args struct {
		gorpc.Header
		File []byte
		Link gonfs.Diropargs3
	}
	res, err := g.call(&link3args{Header: g.header(nfsProcLink), File: file, Link: gonfs.Diropargs3{FH: dir, Filename: name}})
	if err != nil {
		return nil, err
	}
	var attr gonfs.PostOpAttr
	if err := goxdr.Read(res, &attr); err != nil {
		return nil, err
	}
	if !attr.IsSet {
		return nil, errors.New("LINK returned no file attributes")
	}
	return &attr.Attr, nil
}

// createExclusive creates dir/name with CREATE EXCLUSIVE and verifier verf.
func (g *gonfsConn) createExclusive(dir []byte, name string, verf uint64) ([]byte, *gonfs.Fattr, error) {
	type create3args struct {
		gorpc.Header
		Where gonfs.Diropargs3
		Mode  uint32 // createmode3
		Verf  uint64 // createverf3: 8 opaque bytes
	}
	type create3resok struct {
		FH   gonfs.PostOpFH3
		Attr gonfs.PostOpAttr
	}
	res, err := g.call(&create3args{Header: g.header(gonfs.NFSProc3Create), Where: gonfs.Diropargs3{FH: dir, Filename: name},
		Mode: nfsCreateExclusive, Verf: verf})
	if err != nil {
		return nil, nil, err
	}
	var ok create3resok
	if err := goxdr.Read(res, &ok); err != nil {
		return nil, nil, err
	}
	if !ok.FH.IsSet || !ok.Attr.IsSet {
		return nil, nil, fmt.Errorf("CREATE EXCLUSIVE returned handle %v, attributes %v", ok.FH.IsSet, ok.Attr.IsSet)
	}
	return ok.FH.FH, &ok.Attr.Attr, nil
}

// readdirplusPages lists a directory page by page (READDIRPLUS with the
// given dircount and maxcount) and returns every entry in order, "." and
// ".." included, and the number of pages.
func (g *gonfsConn) readdirplusPages(dir []byte, dircount, maxcount uint32) ([]gonfs.EntryPlus, int, error) {
	type args struct {
		gorpc.Header
		FH         []byte
		Cookie     uint64
		CookieVerf uint64
		DirCount   uint32
		MaxCount   uint32
	}
	type head struct {
		DirAttrs   gonfs.PostOpAttr
		CookieVerf uint64
	}
	type item struct {
		IsSet bool            `xdr:"union"`
		Entry gonfs.EntryPlus `xdr:"unioncase=1"`
	}
	var out []gonfs.EntryPlus
	var cookie, verf uint64
	for page := 1; page <= 100000; page++ {
		res, err := g.call(&args{Header: g.header(gonfs.NFSProc3ReadDirPlus), FH: dir, Cookie: cookie, CookieVerf: verf,
			DirCount: dircount, MaxCount: maxcount})
		if err != nil {
			return out, page, fmt.Errorf("page %d (cookie %d): %w", page, cookie, err)
		}
		var h head
		if err := goxdr.Read(res, &h); err != nil {
			return out, page, fmt.Errorf("page %d: %w", page, err)
		}
		n := 0
		for {
			var it item
			if err := goxdr.Read(res, &it); err != nil {
				return out, page, fmt.Errorf("page %d, entry %d: %w", page, n, err)
			}
			if !it.IsSet {
				break
			}
			out = append(out, it.Entry)
			cookie = it.Entry.Cookie
			n++
		}
		var eof bool
		if err := goxdr.Read(res, &eof); err != nil {
			return out, page, fmt.Errorf("page %d: eof: %w", page, err)
		}
		if eof {
			return out, page, nil
		}
		if n == 0 {
			return out, page, fmt.Errorf("page %d: no entries and no EOF", page)
		}
		verf = h.CookieVerf
	}
	return out, 0, errors.New("directory not listed in 100000 pages")
}

// TestInteropGoNFSClient drives keel with the third-party Go client:
// create + write, rename (within and across directories), hard link,
// symlink + readlink, chmod and truncate (SETATTR, guarded and not),
// exclusive create, remove, and READDIRPLUS paging over 3,000 entries.
func TestInteropGoNFSClient(t *testing.T) {
	c := iopCluster(t)
	leader := iopLeader(t, c)
	g := gonfsMount(t, leader.NFSAddr)
	url := func(p string) string { return libnfsURL(t, leader.NFSAddr, "data", p) }
	cat := func(p string) []byte {
		t.Helper()
		out, err := libnfs("nfs-cat", url(p))
		if err != nil {
			t.Fatalf("nfs-cat %s: %v", p, err)
		}
		return out
	}
	run := func(what string, fn func() error) { t.Helper(); within(t, gonfsTimeout, "go-nfs-client: "+what, fn) }

	// Create and write.
	data := content("interop-gonfs:a.txt", 200<<10+3)
	run("mkdir /ops", func() error { _, err := g.Mkdir("/ops", 0o755); return err })
	run("write /ops/a.txt", func() error {
		f, err := g.OpenFile("/ops/a.txt", 0o644)
		if err != nil {
			return err
		}
		if n, err := f.Write(data); err != nil || n != len(data) {
			return fmt.Errorf("wrote %d of %d bytes: %v", n, len(data), err)
		}
		return f.Close()
	})
	if got := cat("ops/a.txt"); !bytes.Equal(got, data) {
		t.Fatalf("nfs-cat ops/a.txt after the library wrote it: %d bytes, want %d", len(got), len(data))
	}

	// RENAME within a directory.
	run("rename a.txt b.txt", func() error { return g.Rename("/ops/a.txt", "/ops/b.txt") })
	run("lookup a.txt after the rename", func() error {
		if _, _, err := g.Lookup("/ops/a.txt"); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("LOOKUP /ops/a.txt after renaming it: %v, want NOENT", err)
		}
		return nil
	})
	ents := iopLs(t, url("ops"))
	if _, ok := iopLsFind(ents, "a.txt"); ok {
		t.Fatalf("nfs-ls ops still lists a.txt after the rename: %v", iopNames(ents))
	}
	if e, ok := iopLsFind(ents, "b.txt"); !ok || e.Size != int64(len(data)) {
		t.Fatalf("nfs-ls ops lists b.txt as %+v (found %v) after the rename", e, ok)
	}
	if got := cat("ops/b.txt"); !bytes.Equal(got, data) {
		t.Fatalf("nfs-cat ops/b.txt after the rename: %d bytes, want %d", len(got), len(data))
	}

	// LINK: c.txt is b.txt.
	var bFH, opsFH []byte
	run("lookup b.txt and ops", func() error {
		var err error
		if _, bFH, err = g.Lookup("/ops/b.txt"); err != nil {
			return err
		}
		_, opsFH, err = g.Lookup("/ops")
		return err
	})
	run("link b.txt c.txt", func() error {
		a, err := g.link(bFH, opsFH, "c.txt")
		if err == nil && a.Nlink != 2 {
			err = fmt.Errorf("LINK: the file has %d links, want 2", a.Nlink)
		}
		return err
	})
	ents = iopLs(t, url("ops"))
	for _, n := range []string{"b.txt", "c.txt"} {
		if e, ok := iopLsFind(ents, n); !ok || e.Nlink != 2 || e.Size != int64(len(data)) {
			t.Fatalf("nfs-ls ops lists %s as %+v (found %v); want 2 links, %d bytes", n, e, ok, len(data))
		}
	}
	if got := cat("ops/c.txt"); !bytes.Equal(got, data) {
		t.Fatalf("nfs-cat ops/c.txt (a hard link): %d bytes, want %d", len(got), len(data))
	}

	// SYMLINK + READLINK.
	run("symlink s.lnk -> b.txt", func() error { return g.Symlink("b.txt", "/ops/s.lnk") })
	run("readlink s.lnk", func() error {
		f, err := g.Open("/ops/s.lnk")
		if err != nil {
			return err
		}
		target, err := f.Readlink()
		if err == nil && target != "b.txt" {
			err = fmt.Errorf("READLINK s.lnk = %q, want b.txt", target)
		}
		return err
	})
	ents = iopLs(t, url("ops"))
	if e, ok := iopLsFind(ents, "s.lnk"); !ok || e.Mode[0] != 'l' || e.Size != int64(len("b.txt")) {
		t.Fatalf("nfs-ls ops lists s.lnk as %+v (found %v); want a symlink of %d bytes", e, ok, len("b.txt"))
	}

	// SETATTR: chmod (guarded by the ctime LOOKUP returned), then truncate.
	run("chmod 0600 b.txt", func() error {
		return g.Setattr("/ops/b.txt", gonfs.Sattr3{Mode: gonfs.SetMode{SetIt: true, Mode: 0o600}})
	})
	run("getattr b.txt", func() error {
		a, err := g.Getattr("/ops/b.txt")
		if err == nil && (a.FileMode&0o7777 != 0o600 || a.Nlink != 2) {
			err = fmt.Errorf("after chmod 0600: mode %o, %d links", a.FileMode, a.Nlink)
		}
		return err
	})
	run("truncate b.txt to 10 bytes", func() error {
		return g.Setattr("/ops/b.txt", gonfs.Sattr3{Size: gonfs.SetSize{SetIt: true, Size: 10}})
	})
	ents = iopLs(t, url("ops"))
	for _, n := range []string{"b.txt", "c.txt"} {
		if e, ok := iopLsFind(ents, n); !ok || e.Mode != "-rw-------" || e.Size != 10 {
			t.Fatalf("nfs-ls ops lists %s as %+v (found %v) after chmod 0600 and truncate to 10", n, e, ok)
		}
	}
	if got := cat("ops/c.txt"); !bytes.Equal(got, data[:10]) {
		t.Fatalf("nfs-cat ops/c.txt after truncating to 10: %q, want %q", got, data[:10])
	}
	// Unguarded SETATTR by handle: extend to 4096 bytes (zeros after 10).
	run("extend b.txt to 4096 bytes", func() error {
		a, err := g.SetAttr(bFH, gonfs.Sattr3{Size: gonfs.SetSize{SetIt: true, Size: 4096}})
		if err == nil && a.Filesize != 4096 {
			err = fmt.Errorf("SETATTR size 4096: post-op size %d", a.Filesize)
		}
		return err
	})
	want := append(append([]byte(nil), data[:10]...), make([]byte, 4096-10)...)
	if got := cat("ops/s.lnk"); !bytes.Equal(got, want) {
		t.Fatalf("nfs-cat ops/s.lnk (symlink to b.txt) after extending to 4096: %d bytes, want %d (10 bytes of data, then zeros)", len(got), len(want))
	}

	// CREATE EXCLUSIVE: the same verifier again is the same create (the
	// same file); another verifier finds the name taken.
	const v1, v2 = 0x0123456789abcdef, 0x0badc0ffee0ddf00
	var xFH []byte
	run("exclusive create x", func() error {
		var err error
		var a *gonfs.Fattr
		xFH, a, err = g.createExclusive(opsFH, "x", v1)
		if err == nil && (a.Type != gonfs.NF3Reg || a.Filesize != 0) {
			err = fmt.Errorf("CREATE EXCLUSIVE: type %d size %d", a.Type, a.Filesize)
		}
		return err
	})
	run("exclusive create x again, same verifier", func() error {
		h, _, err := g.createExclusive(opsFH, "x", v1)
		if err == nil && !bytes.Equal(h, xFH) {
			err = fmt.Errorf("handle %x, the first create gave %x", h, xFH)
		}
		return err
	})
	run("exclusive create x, another verifier", func() error {
		if _, _, err := g.createExclusive(opsFH, "x", v2); !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("CREATE EXCLUSIVE of an existing name with another verifier: %v, want EXIST", err)
		}
		return nil
	})
	// After an exclusive create the client sets the attributes.
	run("setattr x mode 0640", func() error {
		_, err := g.SetAttr(xFH, gonfs.Sattr3{Mode: gonfs.SetMode{SetIt: true, Mode: 0o640}, Mtime: gonfs.SetTime{SetIt: gonfs.SetToServerTime}})
		return err
	})
	ents = iopLs(t, url("ops"))
	if e, ok := iopLsFind(ents, "x"); !ok || e.Mode != "-rw-r-----" || e.Size != 0 {
		t.Fatalf("nfs-ls ops lists x as %+v (found %v); want an empty file of mode 0640", e, ok)
	}

	// RENAME across directories, REMOVE of a link.
	run("mkdir /ops/sub", func() error { _, err := g.Mkdir("/ops/sub", 0o755); return err })
	run("rename b.txt sub/moved.txt", func() error { return g.Rename("/ops/b.txt", "/ops/sub/moved.txt") })
	run("remove c.txt", func() error { return g.Remove("/ops/c.txt") })
	run("getattr sub/moved.txt", func() error {
		a, err := g.Getattr("/ops/sub/moved.txt")
		if err == nil && (a.Nlink != 1 || a.Filesize != 4096) {
			err = fmt.Errorf("sub/moved.txt: %d links, %d bytes; want 1 link, 4096 bytes", a.Nlink, a.Filesize)
		}
		return err
	})
	if got := cat("ops/sub/moved.txt"); !bytes.Equal(got, want) {
		t.Fatalf("nfs-cat ops/sub/moved.txt: %d bytes, want %d", len(got), len(want))
	}
	if ok, diff := sameNames(iopNames(iopLs(t, url("ops"))), []string{"s.lnk", "sub", "x"}); !ok {
		t.Fatalf("nfs-ls ops at the end: %s", diff)
	}

	// READDIRPLUS over 3,000 entries made by the library's CREATE, many in
	// flight on its one connection.
	const n = 3000
	run("mkdir /big", func() error { _, err := g.Mkdir("/big", 0o755); return err })
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("entry-%04d", i)
	}
	start := time.Now()
	run(fmt.Sprintf("create %d files in /big", n), func() error {
		work := make(chan string, n)
		for _, nm := range names {
			work <- nm
		}
		close(work)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for nm := range work {
					if _, err := g.Create("/big/"+nm, 0o644); err != nil {
						errs <- fmt.Errorf("create /big/%s: %w", nm, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
	t.Logf("go-nfs-client created %d files in %v", n, time.Since(start).Round(time.Millisecond))

	// The library's own listing (READDIRPLUS with dircount 512, maxcount
	// 4096: about 20 entries a page).
	var listed []*gonfs.EntryPlus
	start = time.Now()
	run("ReadDirPlus /big", func() error {
		var err error
		listed, err = g.ReadDirPlus("/big")
		return err
	})
	t.Logf("go-nfs-client ReadDirPlus of %d entries took %v", len(listed), time.Since(start).Round(time.Millisecond))
	var got []string
	for _, e := range listed {
		got = append(got, e.FileName)
		if !e.Attr.IsSet || !e.Handle.IsSet || e.Attr.Attr.Type != gonfs.NF3Reg || e.Attr.Attr.Fileid != e.FileId {
			t.Fatalf("READDIRPLUS entry %s: attributes %v (type %d, fileid %d vs %d), handle %v",
				e.FileName, e.Attr.IsSet, e.Attr.Attr.Type, e.Attr.Attr.Fileid, e.FileId, e.Handle.IsSet)
		}
	}
	if ok, diff := sameNames(got, names); !ok {
		t.Fatalf("go-nfs-client ReadDirPlus /big: %s", diff)
	}
	// The handles READDIRPLUS gave work.
	for _, e := range []*gonfs.EntryPlus{listed[0], listed[len(listed)/2], listed[len(listed)-1]} {
		run("getattr by a READDIRPLUS handle", func() error {
			a, err := g.GetAttr(e.Handle.FH)
			if err == nil && a.Fileid != e.FileId {
				err = fmt.Errorf("%s: GETATTR gives fileid %d, READDIRPLUS said %d", e.FileName, a.Fileid, e.FileId)
			}
			return err
		})
	}
	// Page by page, small pages: every entry once, cookies in order.
	var bigFH []byte
	run("lookup /big", func() error { var err error; _, bigFH, err = g.Lookup("/big"); return err })
	for _, size := range []struct{ dircount, maxcount uint32 }{{256, 1024}, {8192, 32768}} {
		var pageEnts []gonfs.EntryPlus
		var pages int
		run(fmt.Sprintf("READDIRPLUS pages of %d bytes", size.maxcount), func() error {
			var err error
			pageEnts, pages, err = g.readdirplusPages(bigFH, size.dircount, size.maxcount)
			return err
		})
		var pnames []string
		var last uint64
		for i, e := range pageEnts {
			if i > 0 && e.Cookie <= last {
				t.Fatalf("READDIRPLUS (maxcount %d): cookie %d of %s after %d", size.maxcount, e.Cookie, e.FileName, last)
			}
			last = e.Cookie
			if e.FileName != "." && e.FileName != ".." {
				pnames = append(pnames, e.FileName)
			}
		}
		if ok, diff := sameNames(pnames, names); !ok {
			t.Fatalf("READDIRPLUS page by page (maxcount %d, %d pages): %s", size.maxcount, pages, diff)
		}
		t.Logf("READDIRPLUS with maxcount %d: %d entries in %d pages", size.maxcount, len(pageEnts), pages)
		if pages < 2 {
			t.Fatalf("READDIRPLUS with maxcount %d listed %d entries in one page", size.maxcount, len(pageEnts))
		}
	}
	if ok, diff := sameNames(iopNames(iopLs(t, url("big"))), names); !ok {
		t.Fatalf("nfs-ls big: %s", diff)
	}
}
