// The seed design that wsgw replaces, written the way it is usually written: gorilla/websocket
// for the handshake and framing, one epoll set holding every connection's fd (a map
// fd -> conn), a loop around EpollWait that calls ReadMessage on each ready fd.
//
//	-mode echo    echo every message back (WriteMessage on the same loop)
//	-mode ingest  read and drop every message (answers the close handshake)
//	-mode plain   one goroutine per connection, ReadMessage/WriteMessage: the echo
//	              backend behind nginx (gorilla's own echo example)
//
// Known weakness, kept on purpose because it is the design under test: gorilla reads
// through a bufio.Reader, so when one read brings several frames ReadMessage returns only
// the first; the rest sit in the buffer while epoll has nothing new to report. Those
// messages are stranded until the client sends again. wsgw-bench counts them.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

type epoll struct {
	fd    int
	lock  sync.RWMutex
	conns map[int]*websocket.Conn
}

func newEpoll() (*epoll, error) {
	fd, err := unix.EpollCreate1(0)
	if err != nil {
		return nil, err
	}
	return &epoll{fd: fd, conns: make(map[int]*websocket.Conn)}, nil
}

func connFD(c *websocket.Conn) int {
	fd := -1
	raw, err := c.UnderlyingConn().(*net.TCPConn).SyscallConn()
	if err == nil {
		raw.Control(func(f uintptr) { fd = int(f) })
	}
	return fd
}

func (e *epoll) add(c *websocket.Conn) error {
	fd := connFD(c)
	ev := unix.EpollEvent{Events: unix.POLLIN | unix.POLLHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(e.fd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	e.lock.Lock()
	e.conns[fd] = c
	e.lock.Unlock()
	return nil
}

func (e *epoll) remove(c *websocket.Conn) {
	fd := connFD(c)
	unix.EpollCtl(e.fd, unix.EPOLL_CTL_DEL, fd, nil)
	e.lock.Lock()
	delete(e.conns, fd)
	e.lock.Unlock()
}

func (e *epoll) wait(events []unix.EpollEvent, out []*websocket.Conn) []*websocket.Conn {
	n, err := unix.EpollWait(e.fd, events, 100)
	if err != nil {
		return out[:0] // EINTR from the Go runtime's own signals
	}
	out = out[:0]
	e.lock.RLock()
	for i := 0; i < n; i++ {
		if c, ok := e.conns[int(events[i].Fd)]; ok {
			out = append(out, c)
		}
	}
	e.lock.RUnlock()
	return out
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(*http.Request) bool { return true },
}

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	mode := flag.String("mode", "echo", "echo | ingest | plain")
	flag.Parse()

	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}

	var ep *epoll
	if *mode != "plain" {
		var err error
		if ep, err = newEpoll(); err != nil {
			log.Fatal(err)
		}
		go func() {
			events := make([]unix.EpollEvent, 100)
			conns := make([]*websocket.Conn, 0, 100)
			for {
				conns = ep.wait(events, conns)
				for _, c := range conns {
					op, msg, err := c.ReadMessage()
					if err != nil {
						ep.remove(c)
						c.Close()
						continue
					}
					if *mode == "echo" {
						if err := c.WriteMessage(op, msg); err != nil {
							ep.remove(c)
							c.Close()
						}
					}
				}
			}
		}()
	}

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if *mode == "plain" {
			go func() {
				defer c.Close()
				for {
					op, msg, err := c.ReadMessage()
					if err != nil {
						return
					}
					if err := c.WriteMessage(op, msg); err != nil {
						return
					}
				}
			}()
			return
		}
		if err := ep.add(c); err != nil {
			c.Close()
		}
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}
